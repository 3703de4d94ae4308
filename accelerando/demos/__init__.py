"""The Gradio demo app (``accelerando demo``): Speak, Vocode, Instrument, Notes and Edit tabs.

``accelerando.demos.app.create_app(checkpoints=None)`` builds it; each tab's logic is a plain module
(``speak``, ``vocoding``, ``instrument``, ``notes``) testable without a server.
"""
