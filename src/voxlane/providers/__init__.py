"""voxlane.providers."""
