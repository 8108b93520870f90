"""Casework: what happens to a case between routing and deletion, in focused parts.

:class:`CaseService` is the one entry the router and the staff commands talk to,
built per unit of work. It is the shared :class:`~handlers.casework.service.CaseContext`
(the unit of work, the directory, how messages are addressed and events recorded)
plus the public methods of small parts composed over that same context:

========================  ==============================================================
``availability``          office hours, urgent windows, coordinators, absence notes
``relay``                 messages and attachments both ways, held messages until a claim
``lifecycle``             announce, claim, release, orphans, pause, close
``opening``               a case (or a referral) after routing
``escalation``            urgent people and cases, overdue cases
``teamwork``              members, invitations, handovers, transfers
``notes``                 internal notes, canned replies
``erasure``               /delete, /erase, /vanish
``controls``              /who, the person's follow-up buttons
``inactivity``            closing cases nobody writes in (run before the purge)
========================  ==============================================================

Parts depend only on parts above them in this list, so each is built once, in order.
"""

from __future__ import annotations

from config.directory import Directory
from config.settings import RetentionSettings
from handlers.casework.availability import Availability
from handlers.casework.controls import PersonControls, followup_buttons
from handlers.casework.erasure import Erasure
from handlers.casework.escalation import Escalation
from handlers.casework.lifecycle import Lifecycle
from handlers.casework.notes import Notes
from handlers.casework.opening import Opening
from handlers.casework.relay import Relay
from handlers.casework.service import OUTCOMES, CaseContext, Person, StaffRole
from handlers.casework.teamwork import Teamwork
from handlers.limits import Limits
from storage.repositories import UnitOfWork

__all__ = ["OUTCOMES", "CaseContext", "CaseService", "Person", "StaffRole", "followup_buttons"]


class CaseService(CaseContext):
    """Applies case effects and staff actions for one unit of work.

    It *is* the shared context (callers such as the follow-up service use its
    ``to_staff``, ``person_of`` ... directly) and offers the parts' entry points
    under their stable names; the parts themselves hold the logic.
    """

    def __init__(
        self,
        uow: UnitOfWork,
        directory: Directory,
        retention: RetentionSettings,
        limits: Limits | None = None,
    ) -> None:
        super().__init__(uow, directory, retention, limits)
        availability = Availability(self)
        relay = Relay(self, availability)
        lifecycle = Lifecycle(self, availability, relay)
        opening = Opening(self, availability, relay, lifecycle)
        escalation = Escalation(self, availability, lifecycle)
        teamwork = Teamwork(self, availability, lifecycle)
        notes = Notes(self, relay)
        erasure = Erasure(self)
        controls = PersonControls(self)
        # person side
        self.open_case = opening.open_case
        self.from_person = relay.from_person
        self.attachment_from_person = relay.attachment_from_person
        self.mark_urgent = escalation.mark_urgent
        self.transfer_answer = teamwork.transfer_answer
        self.who = controls.who
        self.person_followups = controls.person_followups
        self.erase = erasure.erase
        self.vanish = erasure.vanish
        # staff side
        self.describe = lifecycle.describe
        self.claim = lifecycle.claim
        self.release = lifecycle.release
        self.pause = lifecycle.pause
        self.close = lifecycle.close
        self.to_person_from = relay.to_person_from
        self.attachment_to_person = relay.attachment_to_person
        self.members = teamwork.members
        self.invite = teamwork.invite
        self.transfer = teamwork.transfer
        self.note = notes.note
        self.notes = notes.notes
        self.canned = notes.canned
        self.away = availability.away
        # scheduler and directory changes
        self.escalate_overdue = escalation.escalate_overdue
        self.escalate_urgent = escalation.escalate_urgent
        self.release_orphans = lifecycle.release_orphans
