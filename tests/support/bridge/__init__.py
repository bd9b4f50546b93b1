"""Helpers of the PACS bridge tests: fake service answers and films, a scripted loopback HTTP server,
SR readers, dciodvfy wrappers, and the processes of the end-to-end test (Orthanc, service, bridge)."""
