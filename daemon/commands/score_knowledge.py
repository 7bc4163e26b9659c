"""`callcue score-knowledge`: knowledge retrieval against labelled customer questions
(callcue.daemon.eval.score_knowledge)."""
from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("score-knowledge", help="knowledge retrieval P@1, off-topic scores and latency on labelled questions")
    p.add_argument("--kb", type=Path, help="knowledge folder (default: flows/insurance/knowledge)")
    p.add_argument("--questions", type=Path,
                   help="labelled questions (default: eval/knowledge_questions.yaml of the knowledge folder's pack, "
                        "flows/insurance/eval/knowledge_questions.yaml for the sample pack)")
    p.add_argument("--no-embed", action="store_true", help="lexical retrieval only, even if the embedding model is installed")
    p.add_argument("--min-score", type=float, help="push threshold to judge against (default: the base's recommended one)")
    p.add_argument("--models-dir", type=Path, help="where installed models live (default: models/installed)")
    p.add_argument("--notes", action="store_true", help="list every miss and every off-topic score")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..eval.score_knowledge import main
    return main(args.kb, args.questions, args.no_embed, args.min_score, args.models_dir, args.notes)
