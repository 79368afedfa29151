"""The error every public function raises for an argument it refuses."""


class CamArgumentError(ValueError):
    """An argument was refused before any work was done.

    Attributes:
        param: the name of the refused parameter, as the function (and the
            App's form) names it: ``"layers"``, ``"run_key"``, ``"target"``, ...
        message: what was wrong and what is allowed
    """

    def __init__(self, param, message):
        super().__init__(message)
        self.param = param
        self.message = message


class CamArgumentTypeError(CamArgumentError, TypeError):
    """A :class:`CamArgumentError` for an argument of the wrong type."""
