"""Prints a CloudFormation/SAM YAML template as JSON, with the short-form intrinsic
functions (!Ref, !Sub, !GetAtt, ...) in their long form, so tests can read templates
without a YAML parser of their own. Uses PyYAML from the project's .venv."""

import json
import sys

import yaml


class Loader(yaml.SafeLoader):
    pass


def _intrinsic(tag):
    name = "Ref" if tag == "Ref" else f"Fn::{tag}"

    def construct(loader, node):
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if tag == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {name: value}

    return construct


for tag in ["Ref", "Sub", "GetAtt", "Join", "Split", "Select", "If", "Equals", "Not",
            "And", "Or", "Condition", "FindInMap", "Base64", "Cidr", "ImportValue",
            "GetAZs", "ToJsonString", "Length"]:
    Loader.add_constructor(f"!{tag}", _intrinsic(tag))

with open(sys.argv[1], encoding="utf-8") as f:
    print(json.dumps(yaml.load(f, Loader=Loader), default=str))
