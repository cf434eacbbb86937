"""voxlane.cli."""
