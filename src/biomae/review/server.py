"""The review web app (Starlette): a single page and a small JSON API over a :class:`ReviewStore`.

Every request needs the run's access token: ``?token=`` on the first page load (the page then holds
it in a same-site, HTTP-only cookie), or the ``X-Review-Token`` header; anything else is answered
403. Only the page's two files and events of the run are served: an event is looked up by its id in
the store and its recording path comes from the run's ``summary.csv``, never from the request, so
no request can name a file (no path traversal).

API (JSON): ``GET /api/meta`` (recordings, labels), ``GET /api/events?min_score&max_score&label&
recording&reviewed&offset&limit``, ``GET /api/event/<id>`` (with its view span), ``GET
/api/spec/<id>`` (PNG), ``GET /api/audio/<id>`` (WAV), ``POST /api/decide/<id>`` ``{status?,
start_s?, end_s?, low_hz?, high_hz?, label?}``, ``POST /api/add`` ``{key, start_s, end_s, low_hz,
high_hz, label}``, ``POST /api/undo/<id>``, ``GET /api/summary``.
"""

from __future__ import annotations

import secrets
from importlib import resources

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from biomae.review import media
from biomae.review.results import summary
from biomae.review.store import ReviewError, ReviewStore

COOKIE = "biomae_review_token"
HEADER = "x-review-token"
_STATIC = {"/": ("index.html", "text/html"), "/app.js": ("app.js", "text/javascript")}


class _TokenGate(BaseHTTPMiddleware):
    def __init__(self, app, token: str) -> None:
        super().__init__(app)
        self.token = token

    async def dispatch(self, request: Request, call_next):
        given = (
            request.query_params.get("token")
            or request.headers.get(HEADER)
            or request.cookies.get(COOKIE)
            or ""
        )
        if not secrets.compare_digest(given.encode(), self.token.encode()):
            return PlainTextResponse(
                "403: open the URL with its token, as printed by `biomae review`", status_code=403
            )
        response = await call_next(request)
        if request.query_params.get("token"):
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
        return response


def _static(name: str, media_type: str) -> Response:
    text = resources.files("biomae.review").joinpath("static", name).read_text(encoding="utf-8")
    response = Response(text, media_type=media_type)
    response.headers["Cache-Control"] = "no-store"
    return response


def create_app(store: ReviewStore, token: str) -> Starlette:
    """The app serving ``store``; every request must carry ``token``."""

    def page(request: Request) -> Response:
        return _static(*_STATIC[request.url.path])

    def meta(request: Request) -> JSONResponse:
        recordings = list(store.recordings.values())
        return JSONResponse({"recordings": recordings, "labels": store.labels()})

    def events(request: Request) -> JSONResponse:
        q = request.query_params
        try:
            result = store.events(
                min_score=float(q["min_score"]) if q.get("min_score") else None,
                max_score=float(q["max_score"]) if q.get("max_score") else None,
                label=q.get("label") or None,
                recording=q.get("recording") or None,
                reviewed=q.get("reviewed") or None,
                offset=int(q.get("offset", 0)),
                limit=min(int(q.get("limit", 100)), 1000),
            )
        except ValueError as err:
            return JSONResponse({"error": f"bad filter: {err}"}, status_code=400)
        return JSONResponse(result)

    def _event(request: Request) -> dict:
        return store.event(request.path_params["event_id"])

    def event(request: Request) -> JSONResponse:
        row = _event(request)
        return JSONResponse(row | {"view": media.view(row, row["recording"])})

    def spectrogram(request: Request) -> Response:
        row = _event(request)
        return Response(media.spectrogram_png(row, row["recording"]), media_type="image/png")

    def audio(request: Request) -> Response:
        row = _event(request)
        return Response(media.clip_wav(row, row["recording"]), media_type="audio/wav")

    async def _body(request: Request) -> dict:
        body = await request.json()
        if not isinstance(body, dict):
            raise ReviewError("the request body must be a JSON object of fields")
        return body

    async def decide(request: Request) -> JSONResponse:
        body = await _body(request)
        status = body.pop("status", None)
        return JSONResponse(store.decide(request.path_params["event_id"], status, **body))

    async def add(request: Request) -> JSONResponse:
        body = await _body(request)
        return JSONResponse(store.add(str(body.pop("key", "")), **body))

    def undo(request: Request) -> JSONResponse:
        return JSONResponse(store.undo(request.path_params["event_id"]))

    def summary_page(request: Request) -> JSONResponse:
        return JSONResponse(summary(store))

    async def not_found(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": f"no event {exc}"}, status_code=404)

    async def bad_request(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=400)

    routes = [
        *(Route(path, page) for path in _STATIC),
        Route("/api/meta", meta),
        Route("/api/events", events),
        Route("/api/event/{event_id:path}", event),
        Route("/api/spec/{event_id:path}", spectrogram),
        Route("/api/audio/{event_id:path}", audio),
        Route("/api/decide/{event_id:path}", decide, methods=["POST"]),
        Route("/api/add", add, methods=["POST"]),
        Route("/api/undo/{event_id:path}", undo, methods=["POST"]),
        Route("/api/summary", summary_page),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(_TokenGate, token=token)],
        exception_handlers={KeyError: not_found, ReviewError: bad_request, ValueError: bad_request},
    )
