"""voxlane: realtime voice agents whose sessions always end on time."""
