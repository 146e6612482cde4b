"""`python -m curate.stages` (`make conf`): rewrite conf/stage/*.yaml and docs/stages.md from the
stage classes, so each default is written once, in the class."""

from curate.stages import CONF_STAGE_DIR, DOCS_STAGES, stage_classes, stage_yaml, stages_markdown

if __name__ == "__main__":
    CONF_STAGE_DIR.mkdir(parents=True, exist_ok=True)
    for cls in stage_classes():
        path = CONF_STAGE_DIR / f"{cls.config_name}.yaml"
        path.write_text(stage_yaml(cls))
        print(f"wrote {path}")
    DOCS_STAGES.write_text(stages_markdown())
    print(f"wrote {DOCS_STAGES}")
