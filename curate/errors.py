"""The errors a user can cause, each printed as one clear line by the CLI (never a bare traceback)."""


class ThresherError(Exception):
    """Base of every error the CLI reports as one line and exit code 2."""


class ConfigError(ThresherError):
    """The resolved configuration is invalid: names the key and the valid choices."""


class InputError(ThresherError):
    """An input row or file is malformed and `input.on_error=fail` is set: names file, position and field."""


class OutputError(ThresherError):
    """The output directory cannot be used (in use, or holds a different run)."""
