#!/usr/bin/env bash
# Make sure PostgreSQL, Redis and RabbitMQ answer on 127.0.0.1; start Debian's ones if they do
# not (RabbitMQ is installed first where it is missing: only its broker test needs it).
set -euo pipefail

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  version=$(ls /etc/postgresql 2>/dev/null | sort -n | tail -n1)
  if [ -z "$version" ]; then
    echo "PostgreSQL is not installed (scripts/setup.sh test installs it)" >&2; exit 1
  fi
  echo "Starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  # Debian's cluster asks for a password over TCP; tests connect as postgres from loopback.
  hba=/etc/postgresql/$version/main/pg_hba.conf
  if ! grep -q '^host all postgres 127.0.0.1/32 trust' "$hba"; then
    sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
    pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  fi
  for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "Starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp --logfile /tmp/postamt-redis.log
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

# RabbitMQ, for the test of the amqp:// broker (tests/integration/test_rabbitmq.py): guest/guest,
# which RabbitMQ accepts from loopback only.
rabbitmq_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
if ! rabbitmq_up; then
  if ! command -v rabbitmq-server >/dev/null; then
    echo "Installing RabbitMQ"
    # Not started by the package (as in setup.sh): configured first, started below.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      rabbitmq-server >/dev/null || { apt-get update -qq && \
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      rabbitmq-server >/dev/null; }
    rm -f /usr/sbin/policy-rc.d
  fi
  if [ ! -s /etc/rabbitmq/rabbitmq.conf ]; then
    printf 'listeners.tcp.local = 127.0.0.1:5672\n' > /etc/rabbitmq/rabbitmq.conf
    printf 'NODENAME=rabbit@localhost\nERL_EPMD_ADDRESS=127.0.0.1\n' \
      > /etc/rabbitmq/rabbitmq-env.conf
  fi
  echo "Starting RabbitMQ"
  rabbitmq-server -detached
  rabbitmqctl -q await_startup --timeout 120
fi
# A delivery unacknowledged for longer than consumer_timeout closes the worker's channel: it
# must outlast the tasks' longest wait (postamt.E010), 4 h here as docs/operations.md advises.
rabbitmqctl -q eval 'application:set_env(rabbit, consumer_timeout, 14400000).' >/dev/null ||
  echo "Could not raise RabbitMQ's consumer_timeout; its broker test may refuse to start" >&2
