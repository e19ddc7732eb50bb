"""The workers' room: ``reap`` (removing dead sessions and their claims) and ``contract``
(the rules every worker is given before its task)."""
