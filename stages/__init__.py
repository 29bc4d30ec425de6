"""The pipeline's DVC stages (download, subset, train, evaluate: `python -m stages.<name>`) over the library
they share (stages.lib)."""

import warnings

# Paddle warns on every import that ccache, a compiler cache for building C++ extensions, is missing; the
# stages build none. Filtered here, before any stage imports Paddle, and only that one warning.
warnings.filterwarnings("ignore", message="No ccache found", category=UserWarning)
