"""vocoders."""
