"""The workers' room: ``reap`` (removing dead sessions and their claims)."""
