"""The default instance's channels and programs.

Channels are modelled on Marketo's stock event channels: a progression of statuses with step
numbers, where statuses sharing a step are alternatives and `success` marks program success.
Program 1044 is the program the default campaigns and form belong to.
"""

from __future__ import annotations

from simulators.marketo.config import SeedChannel, SeedProgram, SeedProgressionStatus


def _status(name: str, step: int, success: bool = False) -> SeedProgressionStatus:
    return SeedProgressionStatus(name=name, step=step, success=success)


DEFAULT_CHANNELS: list[SeedChannel] = [
    SeedChannel(
        id=1,
        name="Webinar",
        statuses=[
            _status("Not in Program", 0),
            _status("Invited", 10),
            _status("Registered", 20),
            _status("No Show", 30),
            _status("Attended", 40, success=True),
            _status("Attended On-demand", 50, success=True),
        ],
    ),
    SeedChannel(
        id=2,
        name="Live Event",
        statuses=[
            _status("Not in Program", 0),
            _status("Invited", 10),
            _status("Waitlisted", 15),
            _status("Registered", 20),
            _status("No Show", 30),
            _status("Attended", 40, success=True),
        ],
    ),
    SeedChannel(
        id=3,
        name="Content",
        applicableProgramType="program",
        statuses=[
            _status("Not in Program", 0),
            _status("Member", 10),
            _status("Engaged", 20, success=True),
        ],
    ),
]

DEFAULT_PROGRAMS: list[SeedProgram] = [
    SeedProgram(
        id=1044,
        name="Signal Demo Program",
        channel="Webinar",
        description="Webinar program whose member statuses Signal keeps in step",
    ),
    SeedProgram(
        id=1045,
        name="Customer Roadshow",
        channel="Live Event",
        description="Live event program",
    ),
    SeedProgram(
        id=1046,
        name="Whitepaper Library",
        type="Default",
        channel="Content",
        folderId=16,
        folderName="Content",
        description="Content program (not an event)",
    ),
]
