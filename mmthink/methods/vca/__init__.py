"""VCA (arXiv 2412.10471): a training-free video agent that explores a long video's segments by the
VLM's own relevance scores. ``mmthink video-explore`` answers one question; ``mmthink eval vca`` runs
VCA and the baselines at the same frame budget over a JSONL of questions about videos.

Paper term → recipe field → code:
  N uniform frames bound N-1 root segments                        search.initial_frames          explore.explore
  intrinsic reward: relevance 0-100 → [0, 1] per segment          backend.*                      prompts.parse_scores
  "is this enough?" score; stop at the threshold                  search.sufficiency             explore.explore
  one global best-first priority queue (not per level, not UCB)   —                              tree.Tree.pop
  expand only segments above a minimum duration, M frames inside  search.min_duration, search.frames_per_expansion  explore.explore
  top-K memory by reward; answer from its boundary frames (>0)    search.memory                  tree.Tree.memory_times
  step limit; frame budget (unique frames shown)                  search.max_expansions, search.frame_budget  explore.explore
  exploration history in each prompt                              search.history                 prompts.text_parts
  GPT-4o / a local VLM / any OpenAI-compatible endpoint           backend.kind                   backends.Backends, mmthink.ops.vlm
  a scorer of known behaviour (our addition, for tests/studies)   backend.noise, backend.malformed  backends.Scripted
  uniform / VideoTree-style baselines at the same budget          eval.strategies                explore.uniform, cluster
  synthetic needle videos (our addition)                          —                              mmthink.tasks.needle
"""
