"""The outsider for the dashboard's end-to-end tests; run with `manage.py shell < tests/e2e/seed_e2e.py`.

`manage.py seed_demo` makes the two demo sites (st-anne, borough) and their people. This adds a
third site that shares nothing with them, with one administrator, `outsider-admin`. Idempotent: a
second run keeps the site and member and resets the password to E2E_PASSWORD (fresh each run).
"""

import os

from django.contrib.auth import get_user_model

from pollen.accounts.models import Membership, Site
from pollen.accounts.services import membership_add, site_create

PASSWORD = os.environ["E2E_PASSWORD"]
PERSONAS = [("e2e-outside", "Outside Clinic (e2e)", "outsider-admin", "admin")]

for slug, name, username, role in PERSONAS:
    site = Site.objects.filter(slug=slug).first() or site_create(slug=slug, name=name)
    if not Membership.objects.filter(site=site, user__username=username).exists():
        membership_add(caller=None, site=site, username=username, role=role, password=PASSWORD)
    user = get_user_model().objects.get(username=username)
    user.set_password(PASSWORD)
    user.save(update_fields=["password"])
print("e2e outsider ready")
