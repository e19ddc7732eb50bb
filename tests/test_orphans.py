"""Orphans: nothing a pulse or a one-off ``sense`` started outlives it, however it died.

The sensors here are slow (a child of theirs sleeps), and the beat is
killed in mid-flight by a signal no process can catch (SIGKILL) or one that
dumps core (SIGQUIT). Every process a call started carries its marker
(``shell_tool.survivors``), the sensors and their children included.
"""

from __future__ import annotations

import pytest
from conftest import Profile, wait_for
from shell_tool import Call, ShellTool, survivors

SLOW = "sleep 60 | cat\necho 1"


def _killed_mid_beat(profile: Profile, command: str, sig: str) -> Call:
    """Run ``command`` through the tool; once the slow sensor runs, send it ``sig``."""
    started = profile.root / "started"
    profile.sensor("slow", f"echo $$ > {started}\n{SLOW}")
    tool = ShellTool(profile.env, limit=60)
    call = tool.call(
        # No core file from SIGQUIT; a background job of a script starts with it ignored.
        f"ulimit -c 0; env --default-signal=QUIT {command} & beat=$!\n"
        f"until [ -s {started} ]; do sleep 0.02; done\n"
        f"kill -{sig} $beat; wait $beat"
    )
    assert not call.killed and "Traceback" not in call.err, call.err
    return call


@pytest.mark.parametrize("sig", ["KILL", "QUIT"])
def test_a_sensor_never_outlives_a_one_off_sense_that_died(profile: Profile, sig: str) -> None:
    call = _killed_mid_beat(profile, "looop sense", sig)
    wait_for(lambda: survivors(call.marker) == [], timeout=5)


def test_a_sensor_never_outlives_a_pulse_killed_mid_beat(profile: Profile) -> None:
    profile.env["LOOOP_INTERVAL"] = "3600"
    call = _killed_mid_beat(profile, "looop pulse", "KILL")
    wait_for(lambda: survivors(call.marker) == [], timeout=5)
