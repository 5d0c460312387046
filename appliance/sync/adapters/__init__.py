"""The cloud agendas the box can keep in step with, one module each behind
``appliance.sync.adapter.AgendaAdapter``: FHIR R4 (``fhir``, with its resource
mapping in ``fhir_resources``) and CalDAV (``caldav``, with ``ical``)."""
