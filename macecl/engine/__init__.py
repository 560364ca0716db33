"""Running converted models: planning per input shape, and the Engine that runs the plans."""

from macecl.engine.engine import Engine, EngineStats

__all__ = ["Engine", "EngineStats"]
