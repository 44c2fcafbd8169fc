"""A BentoML service with only POST /events, wired as serving/service.py wires it, for the HTTP tests.

The method and middleware below are the lines serving/service.py needs (see serving/events/route.py);
`VIDREC_EVENTS_TEST_LOCK_WAIT_SECONDS` shortens the lock wait so a test can see the 503 quickly.
Two workers, so the tests exercise two processes writing one raw log.
"""

from __future__ import annotations

import os

import bentoml

from serving.api_guard import ApiGuard, GuardPolicy, service_media_types
from serving.error_logging import log_client_errors_without_traceback
from serving.events.intake import EventIntake, IntakeLimits
from serving.events.route import EventRoute
from serving.events.schemas import EventList, EventsAccepted
from vidrec.settings import VidrecSettings


@bentoml.service(name="vidrec_events_test", workers=2, logging={"access": {"enabled": False}})
class EventsOnly:
    def __init__(self) -> None:
        settings = VidrecSettings()
        limits = IntakeLimits(lock_wait_seconds=float(os.environ.get("VIDREC_EVENTS_TEST_LOCK_WAIT_SECONDS", "5")))
        self.event_route = EventRoute(EventIntake(settings.raw_dir, limits))

    @bentoml.api(route="/events")
    async def events(self, events: EventList, ctx: bentoml.Context) -> EventsAccepted:
        """Append client events to the raw log: 202 once durable; 409, 429 or 503 (with Retry-After) if not."""
        return await self.event_route.answer(events, ctx)


def _guard_policy(settings: VidrecSettings) -> GuardPolicy:
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    return GuardPolicy(settings.api_max_body_bytes, api_key, service_media_types(EventsOnly))


EventsOnly.add_asgi_middleware(ApiGuard, policy=_guard_policy(VidrecSettings()))
log_client_errors_without_traceback()
