"""The web front end: browser calls over WebRTC, the support console and the REST API."""
