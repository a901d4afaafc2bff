"""The REST API of rooms and messages (Django REST Framework): thin views over chat.actions
and chat.selectors."""
