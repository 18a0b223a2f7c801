%% rt_bench: the BEAM side of tests/bench/runtime-vs-beam.
%%
%% Each workload mirrors one in tests/bench/rt_bench.c, process for process
%% and message for message. One run per VM:
%%
%%   erl +S N:N +P 2000000 -noshell -pa DIR -run rt_bench main WORKLOAD COUNT
%%
%% prints `RESULT <value>` (the unit is fixed per workload, see below) and
%% halts. Errors print `ERROR <reason>` and halt with status 1.
-module(rt_bench).
-export([main/1]).
-export([idle_wake/0]).

%% Unrelated messages the caller holds in call_deep_mailbox.
-define(DEEP_QUEUE, 100000).

main([Workload, CountText]) ->
    Count = list_to_integer(CountText),
    %% Crash and supervisor reports are off on both sides: the workloads
    %% measure the runtime, not the logger.
    logger:set_primary_config(level, none),
    try run(list_to_atom(Workload), Count) of
        Value ->
            io:format("RESULT ~.3f~n", [float(Value)]),
            halt(0)
    catch
        Class:Reason:Stack ->
            io:format("ERROR ~p:~p ~p~n", [Class, Reason, Stack]),
            halt(1)
    end.

now_ns() -> erlang:monotonic_time(nanosecond).

%% ---- spawn: µs per spawn+exit --------------------------------------------
%% A spawner process starts Count processes that return at once; the clock
%% stops when the process count is back to where it started.
run(spawn, Count) ->
    Base = erlang:system_info(process_count),
    Self = self(),
    T0 = now_ns(),
    spawn(fun() -> spawn_loop(Count), Self ! spawned end),
    receive spawned -> ok end,
    wait_count_below(Base),
    (now_ns() - T0) / 1000 / Count;
%% ---- idle_memory: bytes of RSS per hibernated idle process ---------------
run(idle_memory, Count) ->
    erlang:garbage_collect(),
    timer:sleep(200),
    Base = erlang:system_info(process_count),
    Rss0 = rss(),
    idle_loop(Count),
    wait_count_above(Base + Count),
    %% Let every process reach its hibernate call.
    timer:sleep(500),
    Rss1 = rss(),
    (Rss1 - Rss0) / Count;
%% ---- ring: ns per hop ------------------------------------------------------
%% Count - 1 processes plus the starter form a ring; one token travels 10M
%% hops (the second argument of the token is the hops left).
run(ring, Count) ->
    Hops = ring_hops(),
    Self = self(),
    First = lists:foldl(fun(_, Next) -> spawn(fun() -> ring_node(Next, Self) end) end,
                        Self, lists:seq(1, Count - 1)),
    T0 = now_ns(),
    First ! {token, Hops - 1},
    ring_starter(First),
    (now_ns() - T0) / Hops;
%% ---- call: ns per request/reply round trip, as gen:call does it -----------
run(call, Count) ->
    Server = spawn(fun server_loop/0),
    call_loop(Server, 1000),
    T0 = now_ns(),
    call_loop(Server, Count),
    (now_ns() - T0) / Count;
%% ---- fan_in: messages per second into one receiver -------------------------
%% 1,000 senders, Count messages in all.
run(fan_in, Count) ->
    Senders = 1000,
    Per = Count div Senders,
    Self = self(),
    Receiver = spawn(fun() -> fan_receiver(Per * Senders, Self) end),
    Pids = [spawn(fun() -> receive go -> fan_send(Receiver, Per) end end)
            || _ <- lists:seq(1, Senders)],
    T0 = now_ns(),
    [P ! go || P <- Pids],
    receive fan_done -> ok end,
    Per * Senders / ((now_ns() - T0) / 1.0e9);
%% ---- gen_server_call: ns per gen_server:call round trip --------------------
run(gen_server_call, Count) ->
    {ok, Server} = gen_server:start_link(bench_server, [], []),
    gs_loop(Server, 1000),
    T0 = now_ns(),
    gs_loop(Server, Count),
    (now_ns() - T0) / Count;
%% ---- call_deep_mailbox: gen_server_call with 100,000 messages queued --------
%% The messages wait in the caller's mailbox the whole time; OTP's call only
%% looks past the reference made for it (the receive marker).
run(call_deep_mailbox, Count) ->
    {ok, Server} = gen_server:start_link(bench_server, [], []),
    Self = self(),
    [Self ! {data, I} || I <- lists:seq(1, ?DEEP_QUEUE)],
    gs_loop(Server, 1000),
    T0 = now_ns(),
    gs_loop(Server, Count),
    T = (now_ns() - T0) / Count,
    {message_queue_len, ?DEEP_QUEUE} = process_info(self(), message_queue_len),
    T;
%% ---- gen_event_notify: events per second through 100 handlers -------------
%% One manager, 100 handlers counting events; the clock runs from the first
%% notify until a sync_notify sent after the last has returned.
run(gen_event_notify, Count) ->
    {ok, Mgr} = gen_event:start_link(),
    [ok = gen_event:add_handler(Mgr, {bench_handler, I}, []) || I <- lists:seq(1, 100)],
    T0 = now_ns(),
    notify_loop(Mgr, Count),
    ok = gen_event:sync_notify(Mgr, done),
    T = (now_ns() - T0) / 1.0e9,
    Expected = Count + 1,
    [Expected = gen_event:call(Mgr, {bench_handler, I}, count) || I <- lists:seq(1, 100)],
    Count / T;
%% ---- restart: µs from a child's crash to its replacement answering ---------
%% A one_for_one supervisor with one registered gen_server child; the child
%% is told to crash (it stops with reason `crash`), and the clock stops when
%% a new child answers a call. A fresh supervisor (not timed) every
%% ?RESTART_BLOCK restarts keeps its restart history as short as a real
%% supervisor's: the history is a list filtered on every restart, so
%% thousands of restarts within one period would measure that list instead.
run(restart, Count) ->
    process_flag(trap_exit, true),
    Total = restart_blocks(Count, 0),
    Total / 1000 / Count.

%% ---- helpers -----------------------------------------------------------------

spawn_loop(0) -> ok;
spawn_loop(N) ->
    spawn(fun() -> ok end),
    spawn_loop(N - 1).

wait_count_below(Target) ->
    case erlang:system_info(process_count) of
        C when C =< Target -> ok;
        _ -> erlang:yield(), wait_count_below(Target)
    end.

wait_count_above(Target) ->
    case erlang:system_info(process_count) of
        C when C >= Target -> ok;
        _ -> erlang:yield(), wait_count_above(Target)
    end.

idle_loop(0) -> ok;
idle_loop(N) ->
    spawn(erlang, hibernate, [?MODULE, idle_wake, []]),
    idle_loop(N - 1).

%% Runs only if an idle process gets a message.
idle_wake() ->
    receive _ -> ok end.

rss() ->
    {ok, Status} = file:read_file("/proc/self/status"),
    [_, Rest] = binary:split(Status, <<"VmRSS:">>),
    [Kb | _] = binary:split(string:trim(Rest), <<" ">>),
    binary_to_integer(Kb) * 1024.

ring_hops() ->
    case os:getenv("RT_BENCH_RING_HOPS") of
        false -> 10000000;
        Text -> list_to_integer(Text)
    end.

%% The process holding the token when it runs out tells the starter.
ring_node(Next, Starter) ->
    receive
        {token, 0} -> Starter ! ring_done, ring_node(Next, Starter);
        {token, N} -> Next ! {token, N - 1}, ring_node(Next, Starter)
    end.

ring_starter(First) ->
    receive
        {token, 0} -> ok;
        ring_done -> ok;
        {token, N} -> First ! {token, N - 1}, ring_starter(First)
    end.

server_loop() ->
    receive
        {call, {From, Tag}, Request} ->
            From ! {Tag, Request},
            server_loop()
    end.

%% The same steps as OTP 25's gen:do_call/4: an alias monitor, a tagged
%% request, a selective receive on the tag, demonitor with flush.
call_loop(_Server, 0) -> ok;
call_loop(Server, N) ->
    Mref = erlang:monitor(process, Server, [{alias, demonitor}]),
    Tag = [alias | Mref],
    erlang:send(Server, {call, {self(), Tag}, N}, [noconnect]),
    receive
        {Tag, _Reply} ->
            erlang:demonitor(Mref, [flush]),
            call_loop(Server, N - 1);
        {'DOWN', Mref, _, _, Reason} ->
            exit(Reason)
    end.

fan_receiver(0, Parent) -> Parent ! fan_done;
fan_receiver(N, Parent) ->
    receive {msg, _} -> fan_receiver(N - 1, Parent) end.

fan_send(_Receiver, 0) -> ok;
fan_send(Receiver, N) ->
    Receiver ! {msg, N},
    fan_send(Receiver, N - 1).

gs_loop(_Server, 0) -> ok;
gs_loop(Server, N) ->
    N = gen_server:call(Server, {echo, N}),
    gs_loop(Server, N - 1).

notify_loop(_Mgr, 0) -> ok;
notify_loop(Mgr, N) ->
    gen_event:notify(Mgr, {data, N}),
    notify_loop(Mgr, N - 1).

-define(RESTART_BLOCK, 100).

restart_blocks(0, Total) -> Total;
restart_blocks(Count, Total) ->
    N = min(Count, ?RESTART_BLOCK),
    {ok, Sup} = supervisor:start_link(bench_sup, []),
    T = restart_loop(N, Total),
    exit(Sup, shutdown),
    receive {'EXIT', Sup, _} -> ok end,
    restart_blocks(Count - N, T).

restart_loop(0, Total) -> Total;
restart_loop(N, Total) ->
    Old = wait_child(undefined),
    T0 = now_ns(),
    gen_server:cast(Old, crash),
    New = wait_child(Old),
    N = gen_server:call(New, {echo, N}),
    restart_loop(N - 1, Total + (now_ns() - T0)).

%% The registered child, once it is a pid other than Old.
wait_child(Old) ->
    case whereis(bench_child) of
        Pid when is_pid(Pid), Pid =/= Old -> Pid;
        _ -> erlang:yield(), wait_child(Old)
    end.
