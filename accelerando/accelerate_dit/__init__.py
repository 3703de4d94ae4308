"""accelerate_dit."""
