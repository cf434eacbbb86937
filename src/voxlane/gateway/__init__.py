"""voxlane.gateway."""
