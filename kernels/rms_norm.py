rms_norm=None
