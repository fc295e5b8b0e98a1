#!/usr/bin/env bash
# Runs the README walk-through and the error cases around it against one
# build of the server, printing every status and body with timestamps
# masked. Comparing two builds shows whether a change altered anything a
# client sees:
#
#   tests/walkthrough/run.sh OLD/practice-service 18101 old.txt
#   tests/walkthrough/run.sh NEW/practice-service 18102 new.txt
#   diff old.txt new.txt
set -u
BIN=$1; PORT=$2; OUT=$3
D=$(mktemp -d); cd $D
export PRACTICE_JWT_SECRET=walkthrough-secret-0123456789abcdef0123 DATABASE_URL=sqlite:$D/w.db PRACTICE_ADDR=127.0.0.1:$PORT PRACTICE_DEFAULT_MODELS=gpt-4o-mini RUST_LOG=error
$BIN serve > $D/log 2>&1 & PID=$!
for i in $(seq 50); do curl -s localhost:$PORT/healthz >/dev/null && break; sleep 0.2; done
ADMIN=$($BIN token --sub catalog-sync --scope practice:admin); TEACHER=$($BIN token --sub 7); STUDENT=$($BIN token --sub 42); OTHER=$($BIN token --sub 43)
H='Content-Type: application/json'; U=localhost:$PORT
# Each call prints a numbered header, then the body and the HTTP status.
n=0
r() { n=$((n + 1)); echo "### call $n"; curl -s -w '\n[%{http_code}]\n' "$@"; }
{
r -X PUT $U/internal/practice/classes/3 -H "Authorization: Bearer $ADMIN" -H "$H" -d '{"name": "Essay writing", "members": [{"user_id": 42, "role": "student"}], "models": [{"model_name": "gpt-4o-mini", "enabled": true}, {"model_name": "claude-3-haiku", "enabled": true}]}'
r $U/user/practice/examples -H "Authorization: Bearer $TEACHER" -H "$H" -d '{"title": "their/there", "input_text": "Fix: their going home", "output_text": "They are going home."}'
r $U/user/practice/examples -H "Authorization: Bearer $TEACHER" -H "$H" -d '{"title": "its/it is", "input_text": "Fix: its raining", "output_text": "It is raining.", "meta": {"n": 512, "x": 0.5}}'
r -X PUT $U/internal/practice/agents/8 -H "Authorization: Bearer $ADMIN" -H "$H" -d '{"owner_user_id": 7, "class_id": 3, "name": "Grammar coach", "style_preset": "balanced", "generation_params": {"temperature": 0.3, "max_tokens": 400}, "example_ids": [1, 2]}'
r -X PUT $U/internal/practice/agents/9 -H "Authorization: Bearer $ADMIN" -H "$H" -d '{"owner_user_id": 7, "name": "x", "style_preset": "balanced", "example_ids": [1, 99]}'
r -X PUT $U/internal/practice/projects/10 -H "Authorization: Bearer $ADMIN" -H "$H" -d '{"owner_user_id": 42, "class_id": 3, "name": "P"}'
r -X PUT $U/internal/practice/projects/11 -H "Authorization: Bearer $ADMIN" -H "$H" -d '{"owner_user_id": 42, "class_id": 4, "name": "Q"}'
r -X PUT $U/internal/practice/knowledge/5 -H "Authorization: Bearer $ADMIN" -H "$H" -d '{"owner_user_id": 42, "title": "K5"}'
r -X PUT $U/internal/practice/knowledge/6 -H "Authorization: Bearer $ADMIN" -H "$H" -d '{"owner_user_id": 7, "project_id": 10, "title": "K6"}'
r -X PUT $U/internal/practice/knowledge/7 -H "Authorization: Bearer $ADMIN" -H "$H" -d '{"owner_user_id": 7, "title": "K7"}'
r $U/user/practice/sessions -H "Authorization: Bearer $STUDENT" -H "$H" -H "Idempotency-Key: k1" -d '{"class_id": 3, "agent_id": 8, "project_id": 10, "knowledge_ids": [6, 5], "title": "Essay feedback"}'
r $U/user/practice/sessions -H "Authorization: Bearer $STUDENT" -H "$H" -H "Idempotency-Key: k1" -d '{"class_id": 3, "agent_id": 8, "project_id": 10, "knowledge_ids": [6, 5], "title": "Essay feedback"}'
r $U/user/practice/sessions -H "Authorization: Bearer $STUDENT" -H "$H" -H "Idempotency-Key: k1" -d '{"class_id": 3}'
r $U/user/practice/sessions -H "Authorization: Bearer $STUDENT" -H "$H" -d '{}'
r $U/user/practice/sessions -H "Authorization: Bearer $STUDENT" -H "$H" -d '{"knowledge_ids": [7]}'
r $U/user/practice/sessions -H "Authorization: Bearer $STUDENT" -H "$H" -d '{"class_id": 4}'
r $U/user/practice/sessions -H "Authorization: Bearer $STUDENT" -H "$H" -d '{"class_id": 3, "project_id": 11}'
r $U/user/practice/sessions -H "Authorization: Bearer $STUDENT" -H "$H" -d '{"agent_id": 9}'
r $U/user/practice/sessions -H "Authorization: Bearer $OTHER" -H "$H" -d '{"agent_id": 8}'
r $U/user/practice/sessions -H "Authorization: Bearer $STUDENT" -H "$H" -d '{"class_id": 0, "knowledge_ids": [1,1], "title": "a\nb"}'
r $U/user/practice/sessions/1 -H "Authorization: Bearer $STUDENT"
r $U/user/practice/sessions/1 -H "Authorization: Bearer $OTHER"
r $U/user/practice/sessions/0 -H "Authorization: Bearer $STUDENT"
r $U/user/practice/examples -H "Authorization: Bearer $TEACHER"
r -X PATCH $U/user/practice/examples/1 -H "Authorization: Bearer $TEACHER" -H "$H" -d '{"title": null, "is_active": false}'
r -X DELETE $U/user/practice/examples/2 -H "Authorization: Bearer $TEACHER"
r $U/user/practice/sessions -H "Authorization: Bearer $STUDENT" -H "$H" -d '{"agent_id": 8}'
r -X DELETE $U/internal/practice/agents/8 -H "Authorization: Bearer $ADMIN"
r -X DELETE $U/internal/practice/agents/8 -H "Authorization: Bearer $ADMIN"
r $U/user/practice/sessions -H "Authorization: Bearer $STUDENT" -H "$H" -d '{"agent_id": 8}'
r $U/user/practice/sessions -H "Authorization: Bearer $STUDENT" -H "Content-Type: text/plain" -d '{}'
r -X PUT $U/user/practice/sessions -H "Authorization: Bearer $STUDENT"
r $U/nope -H "Authorization: Bearer $STUDENT"
r $U/user/practice/sessions -H "$H" -d '{}'
r "$U/user/practice/sessions?page_size=2" -H "Authorization: Bearer $STUDENT"
r -X PATCH $U/user/practice/sessions/1 -H "Authorization: Bearer $STUDENT" -H "$H" -d '{"title": "Essay feedback, week 2", "notes": null}'
r -X PATCH $U/user/practice/sessions/1 -H "Authorization: Bearer $OTHER" -H "$H" -d '{"title": "mine now"}'
r -X PATCH $U/user/practice/sessions/1/settings -H "Authorization: Bearer $STUDENT" -H "$H" -d '{"style_preset": "creative", "few_shot_example_ids": [2, 1]}'
r -X DELETE $U/user/practice/sessions/1 -H "Authorization: Bearer $STUDENT"
r $U/user/practice/sessions/1 -H "Authorization: Bearer $STUDENT"
r $U/readyz
} > $OUT 2>&1
kill $PID; wait $PID 2>/dev/null; rm -rf $D
sed -i -E 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z/TS/g' $OUT
