"""Create the Superset admin account, or set its password when it exists.

Run by the superset role (admin.yml) with the venv's Python, as the service user, only when the
admin password does not log in. The account comes as a JSON object on stdin, never in argv or the
environment (both end up on command lines that every local user can read):
{"username", "password", "firstname", "lastname", "email"}; the usual SUPERSET_CONFIG_PATH is in
the environment. Prints "created" or "password set"."""

import json
import sys

from superset.app import create_app


def main() -> int:
    account = json.load(sys.stdin)
    username, password = account["username"], account["password"]
    app = create_app()
    with app.app_context():
        from superset import security_manager as sm

        user = sm.find_user(username=username)
        if user is None:
            role = sm.find_role("Admin")
            if role is None:
                sys.exit("the Admin role does not exist: run `superset init` first")
            created = sm.add_user(
                username,
                account["firstname"],
                account["lastname"],
                account["email"],
                role,
                password=password,
            )
            if not created:
                sys.exit(f"Superset refused to create the user {username} (is the e-mail address taken?)")
            print("created")
        else:
            sm.reset_password(user.id, password)
            print("password set")
    return 0


if __name__ == "__main__":
    sys.exit(main())
