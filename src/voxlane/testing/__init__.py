"""voxlane.testing."""
