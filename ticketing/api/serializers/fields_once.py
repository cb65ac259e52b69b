"""Serializers whose declared fields are copied once per class, not per use.

DRF deep-copies every declared field for every serializer instance (each
field is built again from its arguments, validators and all): for the
checkout start's input and answer that was ~200 microseconds of the ~4 ms
of CPU the request costs, the most of any one thing outside the checkout
itself. Here the deep copy is made once per class, and each instance gets a
shallow copy of each field, bound to it as DRF binds its own.

Only for serializers whose fields read nothing of the serializer they belong
to beyond their own binding: a nested serializer's fields (a ListField's
child, a serializer used as a field) are shared by every instance and reach
the class's copy, not the instance, as their root, so they see no `context`
and no `partial` of the instance. Nothing is kept per request in a field or a
nested serializer during validation or rendering, so sharing them is safe in
threads too.
"""

from __future__ import annotations

import copy

from rest_framework import serializers
from rest_framework.fields import Field


class FieldsCopiedOnce(serializers.Serializer):  # type: ignore[type-arg]
    _fields_template: dict[str, Field] | None = None

    def get_fields(self) -> dict[str, Field]:
        cls = type(self)
        template = cls.__dict__.get("_fields_template")
        if template is None:
            template = copy.deepcopy(self._declared_fields)
            for field in template.values():
                field.validators  # noqa: B018 - built once, shared by the copies (validators keep no state)
            cls._fields_template = template
        return {name: copy.copy(field) for name, field in template.items()}
