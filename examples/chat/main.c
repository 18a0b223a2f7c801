/*
 * main.c: a scripted run of the chat server: two members talk in a room,
 * the room crashes and its supervisor restarts it, the members notice
 * (they monitor the room) and join again, then everything shuts down in
 * order. The run fails (exit 1) unless every member got back each line it
 * said, through the room's broadcast, and nothing is left running.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "chat.h"
#include "rt/supervisor.h"

struct member_args {
    const char *nick;
    const char *lines[3];
    int said;          /* lines it says in all, "is back" included */
    atomic_int *heard; /* of those, how many came back to it */
};

static void print_line(const char *who, const struct chat_line *l)
{
    printf("  [%s sees] #%s <%s> %s\n", who, l->room, l->nick, l->text);
}

/* Receives lines for up to `ms` after the last one. */
static void receive_lines(const struct member_args *a, int64_t ms)
{
    struct rt_msg *m;
    while ((m = rt_receive(ms))) {
        if (m->type == CHAT_MSG_LINE) {
            const struct chat_line *l = (const struct chat_line *)m->data;
            print_line(a->nick, l);
            if (strcmp(l->nick, a->nick) == 0)
                atomic_fetch_add(a->heard, 1);
        }
        rt_msg_free(m);
    }
}

static rt_pid join(const struct member_args *a, rt_ref *mref)
{
    rt_pid room = 0;
    if (chat_room_open("lobby", &room) < 0 || chat_join(room, a->nick) < 0)
        rt_exit(rt_atom_intern("cannot_join"));
    *mref = rt_monitor(room);
    return room;
}

static void member(void *arg)
{
    const struct member_args *a = arg;
    rt_ref mref;
    rt_pid room = join(a, &mref);
    for (int i = 0; i < 3 && a->lines[i]; i++) {
        chat_say(room, a->lines[i]);
        receive_lines(a, 20);
    }
    /* Wait for the room to go away, then join its replacement. */
    struct rt_msg *down = rt_receive_ref(mref, 5000);
    if (!down)
        return;
    printf("  [%s] room went down (%s); joining again\n", a->nick,
           rt_atom_name((rt_atom)down->u64));
    rt_msg_free(down);
    rt_sleep(20);
    room = join(a, &mref);
    char text[64];
    snprintf(text, sizeof text, "%s is back", a->nick);
    chat_say(room, text);
    receive_lines(a, 100);
}

static void show_rooms(void)
{
    struct rt_child_info kids[8];
    size_t n = 0;
    if (rt_sup_which_children(rt_whereis("rooms"), kids, 8, &n) < 0)
        return;
    printf("rooms supervisor: %zu room(s)\n", n);
    for (size_t i = 0; i < n && i < 8; i++)
        printf("  pid %#llx %s restarts=%llu\n", (unsigned long long)kids[i].pid,
               rt_child_status_name(kids[i].status), (unsigned long long)kids[i].restarts);
}

static atomic_int alice_heard, bob_heard;
static atomic_bool all_heard;

static void demo(void *arg)
{
    static const struct member_args alice = {
        "alice", {"hello", "anyone here?", NULL}, 3, &alice_heard};
    static const struct member_args bob = {"bob", {"hi alice", NULL, NULL}, 2, &bob_heard};
    rt_pid sup = 0;
    rt_trap_exit(true);
    if (chat_app_start(&sup) < 0) {
        fprintf(stderr, "chat: cannot start\n");
        return;
    }
    rt_pid a = 0, b = 0;
    rt_spawn(member, (void *)&alice, NULL, &a);
    rt_sleep(10);
    rt_spawn(member, (void *)&bob, NULL, &b);
    rt_sleep(150);

    rt_pid room = rt_whereis("room:lobby");
    struct chat_line hist[CHAT_HISTORY];
    int n = chat_history(room, hist, CHAT_HISTORY);
    printf("history of #lobby (%d lines)\n", n);
    for (int i = 0; i < n; i++)
        printf("  <%s> %s\n", hist[i].nick, hist[i].text);
    show_rooms();

    printf("killing the room %#llx\n", (unsigned long long)room);
    rt_exit_signal(room, RT_KILL);
    rt_sleep(300);
    room = rt_whereis("room:lobby");
    printf("the supervisor restarted it as %#llx\n", (unsigned long long)room);
    show_rooms();

    chat_room_close(room);
    rt_sleep(20);
    printf("after close (transient, exited normally: not restarted)\n");
    show_rooms();

    rt_ref mref = rt_monitor(sup);
    rt_exit_signal(sup, RT_SHUTDOWN);
    rt_msg_free(rt_receive_ref(mref, 5000));
    printf("application stopped\n");
    printf("alice heard %d of her %d lines, bob %d of his %d\n", atomic_load(&alice_heard),
           alice.said, atomic_load(&bob_heard), bob.said);
    atomic_store(&all_heard,
                 atomic_load(&alice_heard) == alice.said && atomic_load(&bob_heard) == bob.said);
}

int main(void)
{
    struct rt_config cfg;
    rt_config_default(&cfg);
    if (rt_start(&cfg) < 0)
        return 1;
    rt_pid pid = 0;
    if (rt_spawn(demo, NULL, NULL, &pid) < 0)
        return 1;
    rt_join(pid, 30000, NULL);
    rt_wait_idle(5000);
    int left = rt_stop();
    return left == 0 && atomic_load(&all_heard) ? 0 : 1;
}
