"""Public names imported on first use, so that importing a package stays cheap (no TensorFlow)."""

import importlib
from typing import Any, Callable, Dict, Iterable, List, Tuple


def lazy_names(package: str, public: Dict[str, str], submodules: Iterable[str]
               ) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``public`` maps names to the submodule defining them.

    Args:
        package: The package's ``__name__``.
        public: Public name -> submodule (relative to the package) that defines it.
        submodules: Submodules reachable as attributes without being imported first.
    """
    submodules = tuple(submodules)
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        if name in public:
            value = getattr(importlib.import_module(f".{public[name]}", package), name)
        elif name in submodules:
            value = importlib.import_module(f".{name}", package)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__() -> List[str]:
        return sorted(set(namespace) | set(public) | set(submodules))

    return __getattr__, __dir__
