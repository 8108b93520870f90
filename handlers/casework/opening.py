"""Opening a case after routing (or referring): what the person reads, what staff see.

Every way a case opens asks the abuse caps first; an urgent person who is refused
gets the crisis numbers again and staff learn of it. A referral names the programme
and its contacts and never drops what was typed without saying so.
"""

from __future__ import annotations

import time
from dataclasses import replace

from config.clock import hour
from config.i18n import Translator
from config.messages import Button, OutboundMessage
from config.vocabulary import Audience
from handlers.base import Effect
from handlers.casework.availability import Availability
from handlers.casework.lifecycle import Lifecycle, explain
from handlers.casework.relay import Relay
from handlers.casework.service import CaseContext, Person, language_name, loc
from handlers.intake import contact_lines, listed_contacts
from handlers.routing import Profile, Route, chat_fallback
from storage.models import Case
from storage.repositories import new_case_code, new_id

#: Audiences who get a short first advice after routing (texts ``advice.<audience>``,
#: general and factual, from the seed material) unless the programme has its own.
FIRST_ADVICE = frozenset({Audience.RELATIVE, Audience.PROFESSIONAL, Audience.AFFECTED})


class Opening:
    """Turns a routing result into a new case (or a referral) and its first messages."""

    def __init__(
        self, ctx: CaseContext, availability: Availability, relay: Relay, lifecycle: Lifecycle
    ) -> None:
        self.ctx = ctx
        self.availability = availability
        self.relay = relay
        self.lifecycle = lifecycle

    async def open_case(
        self, person: Person, effect: Effect, t: Translator
    ) -> list[OutboundMessage]:
        """Open a case (or refer) after routing; tell the person who answers and when."""
        ctx, av = self.ctx, self.availability
        route: Route = effect.data["route"]
        profile: Profile = effect.data["profile"]
        message: str | None = effect.data.get("message")
        danger: str | None = effect.data.get("danger")
        programme = route.programme
        if route.opens_case:
            # The caps apply to every way a case opens (urgent ones have their own).
            refusal = ctx.limits.case_refusal(
                programme.id,
                person.contact.pseudonym,
                time.monotonic(),
                urgent=person.contact.urgent,
            )
            if refusal is not None:
                refused = [ctx.to_person(person, t(refusal))]
                if person.contact.urgent:  # no case now, but the numbers again, first
                    refused.insert(0, replace(ctx.to_person(person, t("crisis")), urgent=True))
                    # Staff must learn that someone in danger did not get through, and
                    # the person must not think that anyone will answer here.
                    refused.append(ctx.to_person(person, t("limits.urgent_refused")))
                    refused.extend(av.urgent_refused(programme, danger, profile.state))
                return refused
        out: list[OutboundMessage] = []
        reasons = explain(route, t)
        if person.contact.urgent and route.step == "fallback" and not profile.state:
            # Nobody asked him for a region: "no programme for your region" would be untrue.
            reasons = t("route.step.urgent")
        if programme.notice:
            # Operator text may open with the programme's name: never the first line.
            out.append(ctx.to_person(person, t("route.notice", text=programme.notice[loc(t)])))
        if not route.opens_case:
            ctx.event(None, programme.id, "referred")
            text = t(
                "route.referral",
                programme=programme.name,
                description=programme.description[loc(t)],
                reasons=reasons,
                contacts=contact_lines(programme, t) or t("contact.none"),
            )
            out.append(ctx.to_person(person, text))
            out.extend(self._language_note(person, route, profile, t))
            if message:  # nothing typed is dropped silently
                out.append(ctx.to_person(person, t("route.unsent")))
            out.extend(self._extras(person, route, profile, t))
            if chat_fallback(ctx.directory, programme.id) is not None:  # never a dead end
                button = Button(t("route.chat_offer.button"), "referred:chat")
                out.append(ctx.to_person(person, t("route.chat_offer"), ((button,),)))
            return out

        code = await self._free_code()
        expiry = ctx.case_expiry()
        key_id, dek = ctx.uow.keys.create(expiry)
        case = Case(
            id=new_id(),
            code=code,
            contact_id=person.contact.id,
            key_id=key_id,
            programme_id=programme.id,
            status="new",
            audience=(
                profile.audience.value if effect.data.get("audience_known", True) else "unknown"
            ),
            scene=profile.scene.value if profile.scene else None,
            region=profile.state,
            district=profile.district,
            language=profile.language,
            in_prison=profile.in_prison,
            urgent=person.contact.urgent,
            danger=danger if person.contact.urgent else None,
            route_step=route.step,
            opened_at=hour(ctx.now),
            last_activity_at=hour(ctx.now),
            delete_after=expiry,
            source=profile.source,
            escalated=0,
        )
        ctx.uow.session.add(case)
        person.case, person.case_loaded = case, True
        ctx.event(
            case,
            programme.id,
            "opened",
            audience=case.audience,
            scene=case.scene,
            region=case.region,
            source=case.source,
        )
        if message:
            self.relay.hold(case, dek, message, 0)
        due = av.set_urgent_due(case, programme, dek) if case.urgent else None
        person.contact.delete_after = expiry
        text = t(
            "route.case.named" if ctx.name_programme else "route.case",
            programme=programme.name,
            code=code,
            reasons=reasons,
            availability=av.availability(programme, t, urgent=case.urgent),
        )
        out.append(ctx.to_person(person, text))
        out.extend(self._language_note(person, route, profile, t))
        own = contact_lines(programme, t)
        if own:  # the chat is one way in; the programme's own paths stay open
            out.append(ctx.to_person(person, t("route.contacts", contacts=own)))
        out.extend(self._extras(person, route, profile, t))
        if case.urgent:
            out.extend(av.closed_notice(person, programme, t))
        out.extend(self.lifecycle.announce(case, programme, route, due))
        return out

    async def _free_code(self) -> str:
        for _ in range(20):
            code = new_case_code()
            if not await self.ctx.uow.cases.code_taken(code):
                return code
        raise RuntimeError("no free case code")

    def _language_note(
        self, person: Person, route: Route, profile: Profile, t: Translator
    ) -> list[OutboundMessage]:
        """When the programme is not known to speak the person's language, say so and
        offer (a) language mediation where the directory lists it for the region,
        (b) English or simple German here, (c) the programme's contact details."""
        if route.language_gap is None:
            return []
        offers = []
        if route.mediation is not None:
            contact = f" ({route.mediation.contact})" if route.mediation.contact else ""
            offers.append(t("route.language.mediation", name=route.mediation.name, contact=contact))
        offers.append(t("route.language.simple"))
        contacts = contact_lines(route.programme, t) or t("contact.none")
        offers.append(t("route.language.contacts", contacts=contacts))
        head = t(f"route.language.{route.language_gap}", language=language_name(profile.language))
        text = head + "\n" + t("route.language.offers", offers="\n".join(offers))
        return [self.ctx.to_person(person, text)]

    def _extras(
        self, person: Person, route: Route, profile: Profile, t: Translator
    ) -> list[OutboundMessage]:
        out = []
        info = route.programme.info.get(profile.audience)
        if info:
            out.append(self.ctx.to_person(person, t("route.info", text=info[loc(t)])))
        elif profile.audience in FIRST_ADVICE:  # the operator's own advice comes first
            out.append(self.ctx.to_person(person, t(f"advice.{profile.audience.value}")))
        lines = [line for line in (listed_contacts(p, t) for p in route.alternatives) if line]
        if lines:
            out.append(
                self.ctx.to_person(person, t("route.alternatives", contacts="\n".join(lines)))
            )
        return out
