#!/usr/bin/env ruby
# Interop harness client built on the Ruby Faye client (Debian `ruby-faye`, 1.4.x)
# running under EventMachine.
#
# Usage (same CLI/output contract as faye_client.js):
#   ruby faye_client.rb --url http://127.0.0.1:PORT/faye --mode subscribe \
#        --channel '/x/*' --count 3 [--transport long-polling|websocket] [--timeout 20] [--linger 0]
#   ruby faye_client.rb --url http://127.0.0.1:PORT/faye --mode publish \
#        --channel /x/y --count 3 --data '{"hello":"world"}' [--transport ...]
#
# stdout: READY / {"channel":...,"data":...} lines / PUBLISHED; errors on stderr, exit != 0.
require 'json'
require 'eventmachine'
require 'faye'

$stdout.sync = true
$stderr.sync = true

def fail!(msg, code = 1)
  $stderr.puts "faye_client.rb: #{msg}"
  $stdout.flush
  exit!(code)
end

def parse_args(argv)
  opts = { 'transport' => 'long-polling', 'count' => '1', 'timeout' => '20', 'linger' => '0', 'data' => '{}' }
  i = 0
  while i < argv.length
    a = argv[i]
    fail!("unexpected argument: #{a}", 2) unless a.start_with?('--')
    if a.include?('=')
      key, val = a[2..-1].split('=', 2)
    else
      key = a[2..-1]
      i += 1
      val = argv[i]
    end
    fail!("missing value for --#{key}", 2) if val.nil?
    opts[key] = val
    i += 1
  end
  %w[url mode channel].each { |k| fail!("--#{k} is required", 2) unless opts[k] }
  fail!("bad --mode #{opts['mode']}", 2) unless %w[subscribe publish].include?(opts['mode'])
  fail!("bad --transport #{opts['transport']}", 2) unless %w[long-polling websocket].include?(opts['transport'])
  opts['count'] = Integer(opts['count'])
  opts['timeout'] = Float(opts['timeout'])
  opts['linger'] = Float(opts['linger'])
  begin
    opts['data'] = JSON.parse(opts['data'])
  rescue JSON::ParserError => e
    fail!("--data is not JSON: #{e.message}", 2)
  end
  fail!('--data must be a JSON object', 2) unless opts['data'].is_a?(Hash)
  opts
end

opts = parse_args(ARGV)
want = opts['transport']

def finish!
  $stdout.flush
  exit!(0)
end

EM.run do
  client = Faye::Client.new(opts['url'], timeout: 30, retry: 1)
  client.disable('websocket') if want == 'long-polling'

  transport = lambda do
    d = client.instance_variable_get(:@dispatcher)
    d && d.connection_type
  end

  deadline = EM.add_timer(opts['timeout']) do
    fail!("timeout after #{opts['timeout']}s (mode=#{opts['mode']}, transport=#{want}, " \
          "current transport=#{transport.call.inspect})", 3)
  end

  # Like the JS client, Ruby Faye handshakes over long-polling and upgrades to
  # websocket asynchronously after the handshake; wait for the requested one.
  wait_for_transport = lambda do |&blk|
    check = lambda do
      if transport.call == want
        blk.call
      else
        EM.add_timer(0.025) { check.call }
      end
    end
    check.call
  end

  disconnect_and_exit = lambda do
    promise = client.disconnect
    EM.add_timer(1) { finish! }
    if promise
      promise.callback { finish! }
      promise.errback { finish! }
    end
  end

  if opts['mode'] == 'subscribe'
    received = 0
    done = false
    sub = client.subscribe(opts['channel'])
    sub.with_channel do |channel, data|
      $stdout.puts JSON.generate('channel' => channel, 'data' => data)
      fail!("unexpected extra message after #{opts['count']}", 4) if done
      received += 1
      if received >= opts['count']
        done = true
        EM.cancel_timer(deadline)
        EM.add_timer(opts['linger']) { disconnect_and_exit.call }
      end
    end
    sub.callback do
      wait_for_transport.call do
        $stderr.puts "faye_client.rb: subscribed to #{opts['channel']} via #{transport.call}"
        $stdout.puts 'READY'
        disconnect_and_exit.call if opts['count'] <= 0
      end
    end
    sub.errback { |err| fail!("subscribe failed: #{err && err.message}") }
  else
    # Client#connect is what Client#publish uses internally to trigger the
    # handshake.  Its block runs inside Faye's (EM) Deferrable callback loop, and
    # calling publish re-entrantly from there crashes with
    # "undefined method `pop' for nil" in em/deferrable.rb, so hop out via next_tick.
    client.connect do
      EM.next_tick do
        wait_for_transport.call do
          acked = 0
          if opts['count'] <= 0
            $stdout.puts 'PUBLISHED'
            disconnect_and_exit.call
          end
          opts['count'].times do |i|
            pub = client.publish(opts['channel'], opts['data'].merge('seq' => i))
            pub.callback do
              acked += 1
              if acked == opts['count']
                $stderr.puts "faye_client.rb: published #{acked} via #{transport.call}"
                $stdout.puts 'PUBLISHED'
                disconnect_and_exit.call
              end
            end
            pub.errback { |err| fail!("publish failed: #{err && err.message}") }
          end
        end
      end
    end
  end
end
