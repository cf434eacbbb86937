"""voxlane.worker."""
