"""alweb's ML engine: architectures, MC dropout scoring, heuristics, training, text encoders, external models.

Plain Python + torch + numpy: nothing here imports Django, so the engine is tested and benchmarked on its own.
Submodules are imported explicitly (``from engine import scoring``); this package does not import them
eagerly because ``text`` pulls in transformers, which is slow to import and not needed by image projects.
"""
