"""Errors of the alerts domain, under one root so the API maps them in one place."""


class AlertsError(Exception):
    pass


class WarningNotFound(AlertsError):
    pass


class InvalidTransition(AlertsError):
    pass
