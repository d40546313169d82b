"""Model catalogs per experiment type: detectors (fault detection) and forecasters (time series)."""
