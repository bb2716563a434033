/* The demo's MessageModel as a JSON Schema (2020-12): what /ws/json-demo
 * validates in examples/demo_server.c, and what tests/bench/micro.c
 * benchmarks.  The Python demo (examples/ffi/python/asyncio_server.py) and
 * the FastAPI/pydantic model in tests/bench/fastapi_app.py say the same.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef WSMSG_EXAMPLE_MESSAGE_MODEL_H
#define WSMSG_EXAMPLE_MESSAGE_MODEL_H

#define MESSAGE_MODEL_SCHEMA                                                   \
  "{\"$schema\": \"https://json-schema.org/draft/2020-12/schema\","            \
  " \"title\": \"MessageModel\", \"type\": \"object\","                        \
  " \"properties\": {\"user\": {\"type\": \"string\"},"                        \
  "                \"content\": {\"type\": \"string\"},"                       \
  "                \"timestamp\": {\"type\": \"number\"}},"                    \
  " \"required\": [\"user\", \"content\", \"timestamp\"]}"

#endif
