"""The intake conversation: consent, safety, a few questions, then routing.

Pure decisions: (state, profile, message) -> Transition. Nothing is stored
before consent; a danger message gets the numbers for its category at every step,
then (without a case) one button: "should someone contact you now?". Pressing it,
or answering "yes, right now" to the safety question, opens an urgent case at once
with only what is known; the remaining questions are skipped.

The router talks to this package only through the names below. Inside:

- ``flow``: :func:`step`, the one decision, and the order in which it looks at a message;
- ``states``: the states, the path through the questions, :class:`IntakeContext`;
- ``words``: commands and plain words a person types (:func:`command_of`);
- ``questions``: the button questions, shown and answered;
- ``consent``: greeting, privacy notice, consent, and the contacts after a decline;
- ``crisis``: numbers, "contact me now", the urgent case and where it goes;
- ``echo``: typed answers understood, echoed and confirmed;
- ``handover``: routing to a programme, the state-authority choice, opening the case;
- ``commands``: what each command does, and "really delete?";
- ``contacts``: a programme's contact line (also used by casework).
"""

from handlers.base import Transition
from handlers.intake.contacts import contact_lines, listed_contacts
from handlers.intake.crisis import CONTACT_NOW, crisis_reply, urgent_route
from handlers.intake.flow import step
from handlers.intake.states import INTAKE_STATES, MAX_TEXT, QUESTIONS, IntakeContext, State
from handlers.intake.words import HELP_WORDS, command_of

__all__ = [
    "CONTACT_NOW",
    "HELP_WORDS",
    "INTAKE_STATES",
    "MAX_TEXT",
    "QUESTIONS",
    "IntakeContext",
    "State",
    "Transition",
    "command_of",
    "contact_lines",
    "crisis_reply",
    "listed_contacts",
    "step",
    "urgent_route",
]
