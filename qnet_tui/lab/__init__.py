"""The lab worker: makes a topology real in namespaces and forwards its frames.
Imports no Textual."""
