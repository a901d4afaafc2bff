"""What the room fixtures of tests/conftest.py leave behind."""

# The lobby fixture's room events: alice made the room (member.joined, change 1) and bob joined
# (member.joined, change 2). The lobby's first message takes change 3: C + 1.
C = LOBBY_CHANGES = 2
# The secret_room fixture's: alice made it (change 1); bob's membership is made with the ORM,
# which records no event.
SECRET_CHANGES = 1
