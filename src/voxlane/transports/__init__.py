"""voxlane.transports."""
