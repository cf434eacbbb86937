"""voxlane.voice."""
