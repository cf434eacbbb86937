"""voxlane.core."""
