"""The service files looop ships: systemd units and launchd plists.

Installed inside the wheel as ``looop.packaging`` so that ``looop install``
(see ``looop.service``) can render them from any installation; these files are
the single source of truth, and nothing else writes a unit or a plist.
"""
