"""What goes wrong when exporting a student (torch-free, so callers can catch it anywhere)."""


class ExportError(RuntimeError):
    """The student could not be exported, or an export does not compute what it computes.

    The trained torch model is never touched by an export: it stays usable (and saved) as it is.
    """


class AgreementError(ExportError):
    """A full-precision export's embeddings differ from the torch student's beyond the gate."""
