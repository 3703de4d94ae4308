"""The ``accelerando`` sub-commands: one module per command, and nothing else.

The rule: every ``accelerando <command>`` front end lives in ``accelerando/commands/<command>.py``, named
after the command. A module holds the argparse registration (``register(subparsers)``, which sets ``func``)
and the thin ``run`` function that turns the parsed flags into calls; the reusable logic stays in the lower
layers (``accelerando.data``, ``accelerando.metrics``, ``accelerando.tts``, ...), which never import this
package. Heavy imports (torch, librosa, gradio) stay inside the ``run`` functions, so building the parser,
and with it ``accelerando --help``, stays fast. :mod:`accelerando.cli` lists the modules in ``COMMANDS``.

- ``info``: versions, device, threads and the bundled checkpoints.
- ``corpus``: ``corpus speech|instruments``, builds the local corpora (:mod:`accelerando.data`).
- ``bench``: benchmark suites that write JSON + PNG (:mod:`accelerando.metrics.vocoder_bench`).
- ``train``: runs a model's training script; its flags keep the diffusers examples' ``--snake_case`` names.
- ``recipe``: rebuilds, resumes or exports a bundled checkpoint (corpus + training stages).
- ``edit``: RF-Edit of a recorded note (:mod:`accelerando.accelerate_dit.note_edit`).
- ``synth``: NEWT timbre transfer (:mod:`accelerando.vocoders.newt.transfer`).
- ``serve``: ``serve`` (the speech API with uvicorn) and its client ``say`` (:mod:`accelerando.tts`).
- ``demo``: the Gradio app (:mod:`accelerando.demos`).
"""
