"""Personas for the dashboard's end-to-end tests; run with `manage.py shell < tests/e2e/seed_e2e.py`.

Idempotent: a second run keeps the sites and members and resets the personas' passwords to
E2E_PASSWORD (each test run picks a fresh one).
"""

import os

from django.contrib.auth import get_user_model

from pollen.accounts.models import Membership, Site
from pollen.accounts.services import membership_add, site_create

PASSWORD = os.environ["E2E_PASSWORD"]
PERSONAS = [
    ("e2e-north", "North General Hospital (e2e)", "north-admin", "admin"),
    ("e2e-north", "North General Hospital (e2e)", "north-clinician", "clinician"),
    ("e2e-south", "South Valley Clinic (e2e)", "south-admin", "admin"),
]

for slug, name, username, role in PERSONAS:
    site = Site.objects.filter(slug=slug).first() or site_create(slug=slug, name=name)
    if not Membership.objects.filter(site=site, user__username=username).exists():
        membership_add(caller=None, site=site, username=username, role=role, password=PASSWORD)
    user = get_user_model().objects.get(username=username)
    user.set_password(PASSWORD)
    user.save(update_fields=["password"])
print("e2e personas ready")
