"""Plotly figures built from plain data (frames, arrays, names), one module per experiment type; never from an
experiment object, so ``figures/`` sits below the experiment types."""
