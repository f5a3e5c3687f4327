"""Clinical scoring logic: early-warning scores computed from vital-sign observations."""
