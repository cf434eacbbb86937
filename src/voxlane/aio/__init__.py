"""voxlane.aio."""
