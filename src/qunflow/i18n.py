"""User-facing texts in Chinese and English, and the choice between them."""

from __future__ import annotations

from babel import Locale, UnknownLocaleError
from babel.numbers import format_decimal, format_percent

LANGUAGES = ("zh", "en")

TEXTS: dict[str, dict[str, str]] = {
    # the funnel planner and the pitfall doctor (issue 14)
    "plan_title": {"en": "Funnel plan", "zh": "漏斗规划"},
    "plan_intro": {"en": "Orders/day = joins/day × Day-1 task rate × order rate after the task (the seed's "
                         "200 × 40% × 10% = 8). Measured: joins of {a} to {b}, as of {c}.",
                   "zh": "日订单 = 日入群 × 首日任务完成率 × 完成任务后的下单率(种子示例 200 × 40% × 10% = 8)。"
                         "实测:{a} 至 {b} 入群的成员,截至 {c}。"},
    "plan_stage": {"en": "Stage", "zh": "环节"},
    "plan_measured": {"en": "Measured", "zh": "实测"},
    "plan_interval": {"en": "95% interval", "zh": "95% 区间"},
    "plan_sample": {"en": "Sample", "zh": "样本"},
    "plan_what_if": {"en": "What if", "zh": "假设"},
    "plan_joins": {"en": "Joins/day", "zh": "日入群"},
    "plan_task": {"en": "Day-1 task rate (M9)", "zh": "首日任务完成率(M9)"},
    "plan_conversion": {"en": "Conversion (M5)", "zh": "转化率(M5)"},
    "plan_order": {"en": "Order rate after the task (M5 ÷ M9)", "zh": "完成任务后的下单率(M5 ÷ M9)"},
    "plan_orders": {"en": "Orders/day", "zh": "日订单"},
    "plan_of": {"en": "{k} of {n}", "zh": "{n} 人中 {k} 人"},
    "plan_days": {"en": "{n} joins in {d} days", "zh": "{d} 天 {n} 人入群"},
    "plan_form_note": {"en": "Type a rate (in %) or joins/day; an empty field keeps the measured value. The "
                             "interval keeps the measured stages' uncertainty; typed values are taken as exact.",
                       "zh": "输入比率(%)或日入群数;留空则沿用实测值。区间保留实测环节的不确定性,输入的值视为确定。"},
    "plan_show": {"en": "Show orders/day", "zh": "计算日订单"},
    "plan_channel": {"en": "Channel", "zh": "渠道"},
    "plan_all": {"en": "All channels", "zh": "全部渠道"},
    "plan_interval_note": {"en": "Rates: Wilson intervals. Orders/day: 20,000 seeded draws of the measured stages "
                                 "(joins as a Poisson count, rates as Beta posteriors).",
                           "zh": "比率:Wilson 区间。日订单:对实测环节做 20,000 次固定种子抽样(入群数按泊松计数,"
                                 "比率按 Beta 后验)。"},
    "doctor_title": {"en": "Pitfall doctor", "zh": "坑点体检"},
    "doctor_intro": {"en": "The workspace checked against the seed's eight pitfalls (P1–P8), in the order of its "
                           "four-week set-up plan.", "zh": "按种子文档的四周落地顺序,对照八个坑点(P1–P8)检查工作区。"},
    "doctor_none": {"en": "No pitfall found: the workspace follows the seed's set-up.",
                    "zh": "未发现坑点:工作区已按种子文档完成设置。"},
    "doctor_week": {"en": "Week", "zh": "周"},
    "doctor_pitfall": {"en": "Pitfall", "zh": "坑点"},
    "doctor_severity": {"en": "Severity", "zh": "级别"},
    "doctor_finding": {"en": "Finding", "zh": "问题"},
    "doctor_fix": {"en": "Fix", "zh": "修复"},
    "doctor_alert": {"en": "Pitfall {p}: {m}", "zh": "坑点 {p}:{m}"},
    "doctor_all": {"en": "All findings", "zh": "全部体检结果"},
    "severity_error": {"en": "error", "zh": "错误"},
    "severity_warning": {"en": "warning", "zh": "警告"},
    "severity_info": {"en": "info", "zh": "提示"},
    "doctor_channel_without_entry_point": {"en": "Channel {ch} has no entry point of its own.",
                                           "zh": "渠道 {ch} 没有专属入口,无法区分其入群来源。"},
    "doctor_joins_without_channel": {"en": "{n} joins in the last {d} days came with no channel.",
                                     "zh": "最近 {d} 天有 {n} 次入群没有渠道(来源未知)。"},
    "doctor_welcome_not_applied": {"en": "No welcome is applied: new members get only the built-in default DM.",
                                   "zh": "未应用欢迎文案:新成员只会收到内置的默认私信。"},
    "doctor_welcome_slow": {"en": "The welcome DM's p99 is {s} s after the join, over the 3-minute "
                                  "window.", "zh": "欢迎私信的 p99 为入群后 {s} 秒,超过 3 分钟窗口。"},
    "doctor_tier_without_group": {"en": "Entry points can route people to tier {tr}, which has no active group.",
                                  "zh": "入口可能把人分到「{tr}」层级,但该层级没有可用的群。"},
    "doctor_tier_filling": {"en": "Tier {tr} is about to fill.", "zh": "「{tr}」层级的群即将满员。"},
    "doctor_tier_without_calendar": {"en": "Tier {tr} has groups but no content calendar.",
                                     "zh": "「{tr}」层级有群,但没有内容日历。"},
    "doctor_no_keyword_rules": {"en": "No keyword rules: group questions get no auto-reply and staff no alert.",
                                "zh": "没有关键词规则:群内提问不会自动回复,也不会提醒工作人员。"},
    "doctor_no_orders": {"en": "No order events in the last {d} days.", "zh": "最近 {d} 天没有订单事件。"},
    "doctor_no_console_user": {"en": "No console user: nobody can sign in, nobody's access is managed.",
                               "zh": "没有控制台用户:无人能登录,权限无人管理。"},
    "doctor_marketing_without_consent": {"en": "{n} members got marketing DMs without marketing consent.",
                                         "zh": "{n} 名成员在未同意营销消息的情况下收到了营销私信。"},
    "doctor_reward_without_budget_cap": {"en": "Reward program {pg} has no budget cap.",
                                         "zh": "奖励方案 {pg} 没有预算上限。"},
    "doctor_reward_before_order": {"en": "Reward program {pg} pays every reward before the invitee's order.",
                                   "zh": "奖励方案 {pg} 的所有奖励都在被邀请人下单前发放。"},
    "doctor_costly_channel": {"en": "Channel {ch}'s CPA (¥{cpa}) is over 3× the others' median (¥{med}).",
                              "zh": "渠道 {ch} 的获客成本(¥{cpa})超过其他渠道中位数(¥{med})的 3 倍。"},
    "join_title": {"en": "Join the community", "zh": "加入社群"},
    "join_intro": {"en": "Tell us a little about you and we'll match you with the right group.",
                   "zh": "简单介绍一下自己,我们会为你匹配最合适的群。"},
    "consent": {"en": "I agree that my answers are stored to match me with groups and content "
                      "(privacy notice, version {version}). I can leave at any time.",
                "zh": "我同意保存我的回答,用于匹配社群和内容(隐私说明,版本 {version})。我可以随时退出。"},
    "consent_marketing": {"en": "Optional: send me news of events and offers by private message. "
                                "I can stop them at any time by replying {stop}.",
                          "zh": "(可选)通过私信给我发送活动和优惠消息。我可以随时回复「{stop}」停止接收。"},
    "submit": {"en": "Join", "zh": "加入"},
    "fix_errors": {"en": "Please check the fields marked below.", "zh": "请检查下方标注的内容。"},
    "ticket_title": {"en": "Your group is ready", "zh": "你的群已经准备好"},
    "entry_link_body": {"en": "Tap the link or scan the code to ask to join. A welcome message arrives first, "
                              "then you are let in.",
                        "zh": "点击链接或扫码申请入群。你会先收到一条欢迎私信，随后通过入群申请。"},
    "ticket_expires": {"en": "This link is yours and works until", "zh": "此链接仅限你本人使用，有效期至"},
    "ticket_body": {"en": "Tap the link or scan the code to join. Your welcome message arrives right after.",
                    "zh": "点击链接或扫码入群,入群后会立刻收到欢迎私信。"},
    "open_group": {"en": "Join the group", "zh": "进入群聊"},
    "join_by_message": {"en": "Then send the bot this message:", "zh": "然后给机器人发送这条消息："},
    "full_title": {"en": "All groups are full right now", "zh": "群已满员"},
    "full_body": {"en": "We're opening a new group. Please try again in a little while.",
                  "zh": "我们正在开新群,请稍后再试。"},
    "not_found": {"en": "This link does not exist.", "zh": "链接不存在。"},
    "entry_closed_title": {"en": "This entry point is closed", "zh": "该入口已关闭"},
    "entry_closed_body": {"en": "This link or QR code is no longer in use. Please ask whoever shared it for a "
                                "current one.", "zh": "此链接或二维码已停用,请向分享者索取新的入口。"},
    # the gate's guard (issue 11): rate limits, the proof-of-work challenge, the new-member coupon cap
    "too_many_title": {"en": "Too many tries", "zh": "操作太频繁"},
    "too_many_body": {"en": "We received a lot of requests from your network or device. Please wait about "
                            "{minutes} min and try again.",
                      "zh": "你的网络或设备在短时间内发出了太多请求,请等约 {minutes} 分钟后再试。"},
    "challenge_failed": {"en": "We could not confirm that this form was sent from a browser. Keep JavaScript "
                               "on and send it again: the page checks itself in a second.",
                         "zh": "我们无法确认表单来自浏览器。请开启 JavaScript 后重新提交,页面会在一秒内自动完成验证。"},
    "challenge_working": {"en": "Checking your browser, one moment…", "zh": "正在验证浏览器,请稍候…"},
    "coupon_capped": {"en": "You're in! New-member coupons are limited per phone and network each day, and "
                            "today's have already been claimed from yours, so this pass comes without one. "
                            "Thank you for understanding.",
                      "zh": "入群资格已确认!新人券每天按设备和网络限量发放,你的设备或网络今天的名额已领完,"
                            "这次就不再发券了,感谢理解。"},
    "coupon_capped_dm": {"en": "Welcome! New-member coupons are limited per phone and network each day and "
                               "today's were already claimed from yours, so none comes with this join. "
                               "Everything else in the group is yours to enjoy.",
                         "zh": "欢迎加入!新人券每天按设备和网络限量发放,你的设备或网络今天的名额已领完,"
                               "这次就不发券了。群里的其他内容和活动都可以照常参加。"},
    "task_title": {"en": "Day-1 task", "zh": "首日任务"},
    "task_done": {"en": "Done, thank you!", "zh": "已完成,谢谢!"},
    # Day-1 task pages (services/tasks.py): each task is done by doing it, not by a button
    "task_profile_intro": {"en": "Tell us a little more so we can match you with content and an advisor.",
                           "zh": "补充几项信息,方便为你匹配内容和专属顾问。"},
    "task_profile_consent": {"en": "I agree that these answers are stored, encrypted, to match me with groups and "
                                   "content (privacy notice, version {version}).",
                             "zh": "我同意加密保存这些回答,用于匹配社群和内容(隐私说明,版本 {version})。"},
    "task_save": {"en": "Save", "zh": "保存"},
    "task_saved": {"en": "Saved, thank you!", "zh": "已保存,谢谢!"},
    "task_coupon_intro": {"en": "Your new-member coupon:", "zh": "你的新人券:"},
    "task_coupon_value": {"en": "{value} off", "zh": "立减 ¥{value}"},
    "task_coupon_expires": {"en": "Valid until {when}", "zh": "有效期至 {when}"},
    "task_coupon_claim": {"en": "Claim the coupon", "zh": "领取优惠券"},
    "task_coupon_claimed": {"en": "Claimed: use this code at checkout.", "zh": "已领取:下单时使用此券码。"},
    "task_coupon_none": {"en": "Your coupon is on its way: it arrives by private message shortly. Open this "
                               "page again then.",
                         "zh": "你的优惠券正在发放中,稍后会通过私信送达,届时再打开本页即可。"},
    "task_vote": {"en": "Vote", "zh": "投票"},
    "task_voted": {"en": "Thanks for voting! Your answer: {option}", "zh": "感谢投票!你的选择:{option}"},
    "task_checkin_body": {"en": "Say \"check in\" (or 签到) in the group: that completes this task.",
                          "zh": "在群里发「签到」即可完成此任务。"},
    "task_other_body": {"en": "This task is completed by doing it in the group; the assistant records it.",
                        "zh": "在群里完成此任务后,助手会自动记录。"},
    "task_status_done": {"en": "Done", "zh": "已完成"},
    "task_err_required": {"en": "Please fill this in.", "zh": "请填写此项。"},
    "task_err_too_long": {"en": "At most {max} characters.", "zh": "最多 {max} 个字符。"},
    "task_err_consent": {"en": "Please agree to the privacy notice to save your answers.",
                         "zh": "请先同意隐私说明,才能保存你的回答。"},
    "task_err_choose": {"en": "Choose one of the options.", "zh": "请选择一个选项。"},
    # S4 event pages (web/meetup_pages.py) and the console's events page
    "event_when": {"en": "Starts {when} (local time), {minutes} min", "zh": "开始时间 {when},时长 {minutes} 分钟"},
    "event_signup": {"en": "Sign up", "zh": "立即报名"},
    "event_signed_up": {"en": "You're signed up. The assistant will remind you before it starts.",
                        "zh": "报名成功,开始前助手会提醒你。"},
    "event_public_hint": {"en": "To sign up, say \"sign up\" in your group, or open the event link the assistant "
                                "sent you.",
                          "zh": "在群里发「报名」即可报名,或打开助手私信发给你的活动链接。"},
    "event_closed": {"en": "This event is over or full; sign-ups are closed.",
                     "zh": "活动已结束或名额已满,报名已关闭。"},
    "event_checkin": {"en": "Check in", "zh": "到场签到"},
    "event_checkin_intro": {"en": "Check in when you join to get the event's time-limited coupon.",
                            "zh": "到场后签到,即可领取活动限时优惠券。"},
    "event_checkin_closed": {"en": "Check-in opens 30 minutes before the start and closes 1 hour after the end.",
                             "zh": "签到在活动开始前 30 分钟开放,结束后 1 小时关闭。"},
    "event_checked_in": {"en": "You're checked in. Your coupon for today:", "zh": "签到成功!你的今日专属优惠券:"},
    "event_attended": {"en": "Checked in", "zh": "已签到"},
    "events_title": {"en": "Events (S4)", "zh": "活动(S4)"},
    # tier moves (issue 13, services/tier_moves.py)
    "tier_move_dm": {"en": "Hi {name}, a place is waiting for you in {group} ({tier}). Your own invite link "
                           "(it works for you only, for a few days): {link}",
                     "zh": "{name}你好,{group}({tier})为你留了位置。这是你的专属入群链接(仅限本人,几天内有效):{link}"},
    "tier_move_staff": {"en": "Tier move: send the member their invite link to {group}: {link}",
                        "zh": "分层迁移:请把进入 {group} 的专属链接发给该成员:{link}"},
    "tier_move_leave": {"en": "Tier move done: take the member out of the old group {group}",
                        "zh": "分层迁移已完成:请将该成员移出原群 {group}"},
    "tier_move_no_room": {"en": "Tier move not offered: no {tier} group with room; open one",
                          "zh": "分层迁移未发出:{tier} 层级没有空位的群,请新建群"},
    "tier_moves_title": {"en": "Tier moves", "zh": "分层迁移"},
    "tier_move_status_requested": {"en": "requested", "zh": "待发出"},
    "tier_move_status_offering": {"en": "being offered", "zh": "发出中"},
    "tier_move_status_offered": {"en": "offered", "zh": "已邀请"},
    "tier_move_status_completed": {"en": "completed", "zh": "已完成"},
    "tier_move_status_expired": {"en": "expired", "zh": "已过期"},
    "tier_move_status_failed": {"en": "failed", "zh": "未成功"},
    "event_type_tier_move_offered": {"en": "tier move offered", "zh": "发出分层迁移邀请"},
    "event_type_tier_moved": {"en": "moved tier", "zh": "完成分层迁移"},
    "event_type_tier_move_expired": {"en": "tier move expired", "zh": "分层迁移邀请过期"},
    "event_type_tier_changed": {"en": "tier changed", "zh": "层级变更"},
    "event_type_joined": {"en": "joined", "zh": "入群"},
    "event_type_left": {"en": "left a group", "zh": "退群"},
    "event_type_level_changed": {"en": "level changed", "zh": "活跃等级变化"},
    "at_risk_title": {"en": "At risk", "zh": "流失预警"},
    "at_risk_intro": {"en": "Members whose engagement level became slipping since %s (no activity for a week "
                            "after being active, or never active since joining). Levels: docs/levels.md.",
                      "zh": "自 %s 起活跃度降为「流失中」的会员(活跃过但一周没有互动,或入群后从未互动)。"
                            "规则见 docs/levels.md。"},
    "at_risk_none": {"en": "Nobody became slipping this week.", "zh": "本周没有会员进入流失中。"},
    "at_risk_member": {"en": "Member", "zh": "会员"},
    "at_risk_since": {"en": "Slipping since", "zh": "流失起始日"},
    "at_risk_group": {"en": "Group", "zh": "群"},
    "at_risk_channel": {"en": "Channel", "zh": "渠道"},
    "at_risk_score": {"en": "Score", "zh": "活跃分"},
    "at_risk_actions": {"en": "Act", "zh": "操作"},
    "at_risk_open_task": {"en": "Advisor task", "zh": "建顾问待办"},
    "at_risk_task_open": {"en": "task open", "zh": "待办已建"},
    "at_risk_playbook": {"en": "Playbook", "zh": "剧本"},
    "at_risk_enroll": {"en": "Start playbook", "zh": "启动剧本"},
    "at_risk_task": {"en": "Advisor task opened in the inbox.", "zh": "已在顾问待办中新建跟进任务。"},
    "at_risk_task_exists": {"en": "This member already has a task for this spell.", "zh": "该会员本次流失已有待办。"},
    "at_risk_enrolled": {"en": "Playbook started for the member.", "zh": "已为该会员启动剧本。"},
    "at_risk_enrolled_exists": {"en": "That playbook was already started for this spell.",
                                "zh": "本次流失已为该会员启动过这个剧本。"},
    "levels_title": {"en": "Engagement levels", "zh": "活跃度分层"},
    "levels_by_group": {"en": "By group", "zh": "按群"},
    "levels_by_channel": {"en": "By channel", "zh": "按渠道"},
    "levels_none": {"en": "No levels computed yet (qunflow levels compute, or hourly under qunflow serve).",
                    "zh": "还没有计算活跃度(运行 qunflow levels compute,或 qunflow serve 每小时自动计算)。"},
    "pool_title": {"en": "Pool: %s", "zh": "复购池:%s"},
    "pool_rate": {"en": "Repeat-order rate within %s days", "zh": "%s 天内复购率"},
    "pool_members": {"en": "members", "zh": "成员"},
    "pool_week": {"en": "Entry week", "zh": "进入周"},
    "pool_entered": {"en": "Entered", "zh": "进入"},
    "pool_in_progress": {"en": "In progress", "zh": "窗口未满"},
    "pool_repeat": {"en": "Repeat rate", "zh": "复购率"},
    "level_new": {"en": "new", "zh": "新人"},
    "level_active": {"en": "active", "zh": "活跃"},
    "level_core": {"en": "core", "zh": "核心"},
    "level_slipping": {"en": "slipping", "zh": "流失中"},
    "level_dormant": {"en": "dormant", "zh": "沉睡"},
    "events_new": {"en": "New event", "zh": "新建活动"},
    "events_none": {"en": "No events yet.", "zh": "还没有活动。"},
    "events_created": {"en": "Event created; its playbooks run from its date.",
                       "zh": "活动已创建,剧本将按活动时间运行。"},
    "events_key": {"en": "Key (letters, digits, _)", "zh": "标识(字母、数字、下划线)"},
    "events_date": {"en": "Start (local time)", "zh": "开始时间(本地时间)"},
    "events_title_zh": {"en": "Title (Chinese)", "zh": "标题(中文)"},
    "events_title_en": {"en": "Title (English, optional)", "zh": "标题(英文,可选)"},
    "events_duration": {"en": "Minutes", "zh": "时长(分钟)"},
    "events_keyword": {"en": "Check-in keyword in the group (optional)", "zh": "群内签到口令(可选)"},
    "events_coupon_value": {"en": "Day-of coupon value (¥)", "zh": "当天优惠券面额(元)"},
    "events_coupon_hours": {"en": "Coupon valid hours after the end", "zh": "优惠券在结束后有效小时数"},
    "events_capacity": {"en": "Places (optional)", "zh": "名额(可选)"},
    "events_create": {"en": "Create", "zh": "创建"},
    "events_signups": {"en": "Sign-ups", "zh": "报名"},
    "events_attended": {"en": "Attended", "zh": "到场"},
    "events_orders": {"en": "Orders", "zh": "订单"},
    "events_revenue": {"en": "Revenue", "zh": "收入"},
    "events_unconverted": {"en": "Attended, no order", "zh": "到场未下单"},
    "events_coupons": {"en": "Day-of coupons used / issued", "zh": "当天优惠券 已用/已发"},
    "events_member": {"en": "Member", "zh": "成员"},
    "events_signed_at": {"en": "Signed up", "zh": "报名时间"},
    "events_checked_at": {"en": "Checked in", "zh": "签到时间"},
    "events_via": {"en": "Via", "zh": "方式"},
    "events_starts": {"en": "Starts", "zh": "开始"},
    "events_orders_note": {"en": "Orders: attendees' orders from the start to 7 days after the end.",
                           "zh": "订单:到场者从活动开始到结束后 7 天内的订单。"},
    "rules_title": {"en": "Group rules and privacy", "zh": "群规与隐私说明"},
    "rules_body": {"en": "Be kind, no spam or ads. We keep only what you told us, to match you with "
                         "content; sensitive questions are handled in private messages, never in the group. "
                         "Ask the assistant to delete your data at any time.",
                   "zh": "友善交流,禁止刷屏和广告。我们只保存你提供的信息,用于匹配内容;敏感事项只通过私信处理,"
                         "不在群里讨论。你可以随时要求助手删除你的数据。"},
    "login_expired": {"en": "This form has expired: please log in again.", "zh": "表单已过期,请重新登录。"},
    "login_wrong": {"en": "Wrong user name or password.", "zh": "用户名或密码错误。"},
    "login_throttled": {"en": "Too many failed logins: try again in {minutes} minutes.",
                        "zh": "登录失败次数过多,请 {minutes} 分钟后再试。"},
    "keyword_alert": {"en": "Keyword rule {rule} matched a message from member {member} ({where}); please "
                            "follow up: {link}",
                      "zh": "关键词规则 {rule} 命中了会员 {member} 的消息({where}),请跟进:{link}"},
    # privacy rights (P8): consent pages, chat confirmations, the consent ask in a gate-less welcome
    "unsubscribe_title": {"en": "Stop marketing messages", "zh": "退订营销消息"},
    "unsubscribe_ask": {"en": "You will no longer get news of events and offers. Messages about your tasks, "
                              "coupons you earned and the group keep coming.",
                        "zh": "退订后你将不再收到活动和优惠消息;与你的任务、已获得的优惠券和社群相关的消息不受影响。"},
    "unsubscribe_confirm": {"en": "Unsubscribe", "zh": "确认退订"},
    "unsubscribe_done": {"en": "Done: you will get no more marketing messages. You can subscribe again at any "
                               "time by replying {start}.",
                         "zh": "已退订,你将不再收到营销消息。如需恢复,随时回复「{start}」。"},
    "consent_title": {"en": "News of events and offers", "zh": "活动与优惠消息"},
    "consent_ask": {"en": "May we send you news of events and offers by private message? At most a few a week, "
                          "never at night; reply {stop} to any of them to end it.",
                    "zh": "可以通过私信给你发送活动和优惠消息吗?每周不多,夜间不发;随时回复「{stop}」即可停止。"},
    "consent_agree": {"en": "Yes, send them", "zh": "同意接收"},
    "consent_done": {"en": "Thank you: you will get news of events and offers. Reply {stop} at any time to end it.",
                     "zh": "谢谢!你将收到活动和优惠消息,随时回复「{stop}」即可停止。"},
    "chat_unsubscribed": {"en": "You will get no more marketing messages from us. Reply {start} to get them "
                                "again.",
                          "zh": "已为你退订营销消息。如需恢复,回复「{start}」。"},
    "chat_subscribed": {"en": "Thank you: you will get news of events and offers. Reply {stop} at any time to end it.",
                        "zh": "谢谢!你将收到活动和优惠消息,随时回复「{stop}」即可停止。"},
    "welcome_consent_ask": {"en": "May we also send you news of events and offers? Agree here: {link} (or reply "
                                  "{start}). Until you do, we send none.",
                            "zh": "是否愿意接收活动和优惠消息?同意请点:{link}(或回复「{start}」)。"
                                  "未同意前我们不会发送。"},
    "marketing_footer": {"en": "Reply {stop} or open {link} to unsubscribe.",
                         "zh": "回复「{stop}」或打开 {link} 即可退订。"},
    "keyword_where_private": {"en": "private message", "zh": "私聊"},
    # S3 referral poster (services/posters.py)
    "poster_main": {"en": "Scan to join, get a {coupon} new-member coupon + free consultation",
                    "zh": "扫码入群,领 {coupon} 新人券 + 免费咨询"},
    "poster_main_plain": {"en": "Scan to join and get a free consultation", "zh": "扫码入群,享免费咨询"},
    "poster_sub": {"en": "Invite 1 for {reward} more; invite {team} to unlock VIP perks",
                   "zh": "邀请 1 人再得 {reward};邀请 {team} 人解锁 VIP 特权"},
    "poster_sub_plain": {"en": "Invite {team} friends to unlock VIP perks", "zh": "邀请 {team} 人解锁 VIP 特权"},
    "poster_inviter": {"en": "{name} invites you", "zh": "{name} 邀请你加入"},
    "poster_caption": {"en": "Scan the code to join", "zh": "长按识别或扫码加入"},
    # Fraud reasons on referrals (services/fraud.reason_text), shown in the review queue.
    "fraud_why_self_referral_member": {"en": "The inviter invited themself.", "zh": "邀请人邀请了自己。"},
    "fraud_why_self_referral_device": {"en": "The invitee joined on the inviter's device.",
                                       "zh": "被邀请人使用邀请人的设备入群。"},
    "fraud_why_self_referral_phone": {"en": "The invitee has the inviter's phone number.",
                                      "zh": "被邀请人与邀请人手机号相同。"},
    "fraud_why_shared_device": {"en": "The device is shared with {count} other invitee(s) of the inviter.",
                                "zh": "该设备与同一邀请人的另外 {count} 位被邀请人共用。"},
    "fraud_why_shared_phone": {"en": "The phone number is shared with {count} other invitee(s) of the inviter.",
                               "zh": "该手机号与同一邀请人的另外 {count} 位被邀请人相同。"},
    "fraud_why_shared_ip_ua": {"en": "Same IP and browser as {count} other member(s) of this referral circle.",
                               "zh": "与同一邀请圈的另外 {count} 人 IP 和浏览器完全相同。"},
    "fraud_why_shared_ip": {"en": "Same IP as {count} other member(s): a shared network, for information only.",
                            "zh": "与另外 {count} 人 IP 相同(可能是同一办公室或宿舍网络,仅供参考)。"},
    "fraud_why_burst": {"en": "{count} invitees of the inviter joined within {minutes} minutes.",
                        "zh": "同一邀请人的 {count} 位被邀请人在 {minutes} 分钟内集中入群。"},
    "fraud_why_fast_conversion": {"en": "First order {minutes} minutes after joining.",
                                  "zh": "入群 {minutes} 分钟后即首单。"},
    "fraud_why_inviter_coupon": {"en": "The inviter's coupon was used on the invitee's order.",
                                 "zh": "被邀请人的订单使用了邀请人的优惠券。"},
    "fraud_why_never_active": {"en": "No message, task or order {days} days after joining.",
                               "zh": "入群 {days} 天内没有任何发言、任务或订单。"},
    "fraud_why_ring": {"en": "A closed referral cluster of {size} members who invited each other.",
                       "zh": "{size} 人互相邀请形成闭环。"},
    "fraud_why_disposable": {"en": "A disposable e-mail domain or virtual phone number at the gate.",
                             "zh": "入群时使用了一次性邮箱或虚拟号段手机号。"},
    # Short names of the reasons the console's labels lack (the others are in the incentives block below).
    "fraud_shared_device": {"en": "device shared by invitees", "zh": "被邀请人共用设备"},
    "fraud_shared_phone": {"en": "phone number shared by invitees", "zh": "被邀请人共用手机号"},
    "fraud_shared_ip_ua": {"en": "same network and browser", "zh": "网络和浏览器相同"},
    "fraud_shared_ip": {"en": "same network (information only)", "zh": "同一网络(仅供参考)"},
    "fraud_never_active": {"en": "invitee never became active", "zh": "被邀请人从未活跃"},
}

# Incentives console (issue 5): reward statuses and fraud reasons in words. A reason code the fraud scoring
# stores that has no words here is shown as its code.
TEXTS.update({
    "rewards_title": {"en": "Rewards", "zh": "奖励"},
    "referrals_title": {"en": "Referral leaderboard", "zh": "邀请排行榜"},
    "reward_held": {"en": "held", "zh": "冻结期"},
    "reward_review": {"en": "in review", "zh": "待审核"},
    "reward_paid": {"en": "paid", "zh": "已发放"},
    "reward_capped": {"en": "over budget", "zh": "超预算"},
    "reward_rejected": {"en": "rejected", "zh": "已拒绝"},
    "reward_reversed": {"en": "reversed", "zh": "已撤销"},
    "reward_clawed_back": {"en": "clawed back", "zh": "已追回"},
    "fraud_low": {"en": "low risk", "zh": "低风险"},
    "fraud_medium": {"en": "medium risk", "zh": "中风险"},
    "fraud_high": {"en": "high risk", "zh": "高风险"},
    "fraud_self_referral": {"en": "invited themselves", "zh": "自己邀请自己"},
    "fraud_burst": {"en": "many invitees within minutes", "zh": "几分钟内大量被邀请人"},
    "fraud_fast_conversion": {"en": "converted suspiciously fast", "zh": "转化过快"},
    "fraud_inviter_coupon": {"en": "the inviter's coupon was used on the invitee's order",
                             "zh": "被邀请人的订单使用了邀请人的券"},
    "fraud_ring": {"en": "referral ring (members inviting each other)", "zh": "互相邀请的环"},
    "fraud_disposable": {"en": "disposable identity", "zh": "一次性身份"},
})

# Gates, fallback and the waitlist, referral landings, page texts (issue 12).
TEXTS.update({
    "no_room_alert": {"en": "No room in tier {tier} (entry point {entry}): {went}. Add a group for {tier}.",
                      "zh": "{tier} 层级没有空位(入口 {entry}):{went}。请为 {tier} 新建群。"},
    "no_room_fallback": {"en": "sent to {tier} ({group}) instead", "zh": "已改送到 {tier}({group})"},
    "no_room_waitlist": {"en": "every fallback tier is full too, the visitor is on the waitlist",
                         "zh": "备选层级也已满,访客已进入候补名单"},
    "waitlist_title": {"en": "You're on the waitlist", "zh": "你已进入候补名单"},
    "waitlist_body": {"en": "Every group that fits you is full right now. You keep your place: a seat opens "
                            "soon, and this page then shows your invitation. Keep its address.",
                      "zh": "适合你的群暂时都满了。你的候补位置已保留:有空位时本页会显示你的入群邀请,请保存本页地址。"},
    "waitlist_contact": {"en": "Your contact (phone, WeChat ID or e-mail), so we can tell you",
                         "zh": "你的联系方式(手机号、微信号或邮箱),有空位时通知你"},
    "waitlist_consent": {"en": "I agree that you keep this contact only to tell me when a seat opens; "
                               "it is deleted when I join or ask.",
                         "zh": "我同意你们仅为通知空位保存此联系方式,入群或我要求时即删除。"},
    "waitlist_saved": {"en": "Thank you: we'll contact you when a seat opens.",
                       "zh": "已保存:有空位时我们会联系你。"},
    "waitlist_invited": {"en": "A seat opened for you", "zh": "有空位了,欢迎入群"},
    "waitlist_save": {"en": "Save my contact", "zh": "保存联系方式"},
    "referral_invited_by": {"en": "{name} invited you", "zh": "{name} 邀请你加入"},
    "referral_reward": {"en": "Join now and get: {reward}", "zh": "现在加入可得:{reward}"},
    "referral_someone": {"en": "A friend", "zh": "你的朋友"},
})


# The outbox page (/console/sends) and a staff-confirmed task's results.
TEXTS.update({
    "sends_title": {"en": "Sends", "zh": "发送记录"},
    "sends_intro": {"en": "Every message qunflow sends (welcome, menu, keyword reply, playbook step, coupon), newest "
                          "first, never its text. Failed sends are retried from the dead letters.",
                    "zh": "qunflow 发出的每条消息(欢迎语、菜单、关键词回复、剧本步骤、优惠券),最新的在前,不显示正文。"
                          "失败的发送在「死信」中重试。"},
    "sends_status": {"en": "Status", "zh": "状态"},
    "sends_kind": {"en": "Kind", "zh": "类型"},
    "sends_any": {"en": "all", "zh": "全部"},
    "sends_filter": {"en": "Filter", "zh": "筛选"},
    "sends_none": {"en": "No sends match.", "zh": "没有符合条件的发送记录。"},
    "sends_platform": {"en": "Platform", "zh": "平台"},
    "sends_to": {"en": "To", "zh": "发给"},
    "sends_tries": {"en": "Tries", "zh": "尝试次数"},
    "sends_created": {"en": "Created", "zh": "创建时间"},
    "sends_sent": {"en": "Sent", "zh": "发送时间"},
    "sends_error": {"en": "Error", "zh": "错误"},
    "sends_zone": {"en": "Times in {zone}.", "zh": "时间按 {zone} 显示。"},
    "sends_results": {"en": "results", "zh": "执行结果"},
    "sends_task_note": {"en": "WeCom group messages and DMs outside a welcome are mass-send tasks that a staff "
                              "member confirms in the WeCom client; \"results\" asks WeCom how far a task got.",
                        "zh": "企业微信的群消息和欢迎语以外的私信是群发任务,需成员在企业微信中确认发送;"
                              "「执行结果」向企业微信查询任务进度。"},
    "results_title": {"en": "Task {id}: results", "zh": "任务 {id} 的执行结果"},
    "results_sent": {"en": "sent", "zh": "已发送"},
    "results_pending": {"en": "waiting for staff", "zh": "待成员确认"},
    "results_not_contact": {"en": "no longer a contact", "zh": "已不是好友"},
    "results_over_limit": {"en": "over the monthly cap", "zh": "超过每月接收上限"},
    "results_target": {"en": "Customer or group", "zh": "客户或客户群"},
    "results_staff": {"en": "Staff", "zh": "成员"},
    "results_back": {"en": "Back to the sends", "zh": "返回发送记录"},
    "send_queued": {"en": "queued", "zh": "排队中"},
    "send_pending": {"en": "sending", "zh": "发送中"},
    "send_retry": {"en": "to retry", "zh": "待重试"},
    "send_sent": {"en": "sent", "zh": "已发送"},
    "send_dead": {"en": "dead letter", "zh": "死信"},
    "send_unreachable": {"en": "unreachable", "zh": "无法触达"},
    "send_skipped": {"en": "skipped", "zh": "已跳过"},
})


# Page polish (issue 12): the console's shared words, the entry-points and sandbox pages, the leaderboard's
# risk badge. Tiers and roles are fixed words of the product, so they are translated like any label.
TEXTS.update({
    "tier_newbie": {"en": "newbie", "zh": "新人群"},
    "tier_interest": {"en": "interest", "zh": "兴趣群"},
    "tier_core": {"en": "core", "zh": "核心群"},
    "tier_broadcast": {"en": "broadcast", "zh": "资讯群"},
    "role_owner": {"en": "owner", "zh": "所有者"},
    "role_operator": {"en": "operator", "zh": "运营"},
    "role_advisor": {"en": "advisor", "zh": "顾问"},
    "role_analyst": {"en": "analyst", "zh": "分析师"},
    "consent_purpose_profile": {"en": "profile (matching)", "zh": "资料(用于匹配)"},
    "consent_purpose_marketing": {"en": "marketing messages", "zh": "营销消息"},
    "consent_source_gate": {"en": "join form", "zh": "入群表单"},
    "consent_source_keyword": {"en": "chat keyword", "zh": "聊天关键词"},
    "consent_source_link": {"en": "personal link", "zh": "个人链接"},
    "consent_source_welcome_reply": {"en": "reply to the welcome", "zh": "回复欢迎私信"},
    "consent_source_api": {"en": "API", "zh": "API"},
    "consent_source_console": {"en": "console", "zh": "控制台"},
    "times_in_zone": {"en": "Times in {zone}", "zh": "时间均为 {zone} 时区"},
    "entries_title": {"en": "Entry points", "zh": "入口"},
    "entries_qr_alt": {"en": "QR code of {code}", "zh": "{code} 的二维码"},
    "sandbox_title": {"en": "Sandbox platform", "zh": "沙盒平台"},
    "sandbox_chats": {"en": "Chats", "zh": "群聊"},
    "sandbox_users": {"en": "Users", "zh": "用户"},
    "sandbox_group_messages": {"en": "Group messages", "zh": "群消息"},
    "sandbox_direct_messages": {"en": "Private messages", "zh": "私信"},
    "sandbox_chat": {"en": "Chat", "zh": "群聊"},
    "sandbox_chat_title": {"en": "Title", "zh": "群名"},
    "sandbox_members": {"en": "Members", "zh": "成员数"},
    "sandbox_bot_dms": {"en": "Bot private messages", "zh": "机器人私信"},
    "sandbox_bot": {"en": "bot", "zh": "机器人"},
    "risk_badge_high": {"en": "{count} high-risk", "zh": "{count} 个高风险"},
    "risk_badge_medium": {"en": "{count} to check", "zh": "{count} 个待核查"},
    "risk_column": {"en": "Risk", "zh": "风险"},
    "referrals_order": {"en": "Ordered by qualified invitees (first order or other qualifying action), then joined "
                              "invitees; invitees flagged as high fraud risk do not count toward the rank (they "
                              "stay in the columns, with a badge). Dates are the invitees' join days.",
                        "zh": "按合格被邀请人(完成首单等)排序,其次按入群人数;被判为高风险的被邀请人不计入排名"
                              "(仍计入各列,并以标记提示)。日期为被邀请人入群日。"},
})


def tier_name(tier: str | None, lang: str) -> str:
    """A tier in the page's language (a tier this version does not know is shown as stored)."""
    key = f"tier_{tier}"
    return t(key, lang) if key in TEXTS else (tier or "—")


def word(kind: str, key: str | None, lang: str) -> str:
    """A stored key of a fixed list (a consent purpose or source...) in words; an unknown key as stored."""
    name = f"{kind}_{key}"
    return t(name, lang) if name in TEXTS else (key or "—")


def role_name(role: str, lang: str) -> str:
    key = f"role_{role}"
    return t(key, lang) if key in TEXTS else role


def negotiate(accept_language: str | None, setting: str = "auto", override: str | None = None) -> str:
    """`?lang=` beats the workspace setting, which beats the browser; Chinese is the fallback."""
    for choice in (override, None if setting == "auto" else setting):
        if choice in LANGUAGES:
            return choice
    wanted = [part.split(";")[0].strip().replace("-", "_") for part in (accept_language or "").split(",")]
    try:
        found = Locale.negotiate([w for w in wanted if w], ["zh", "en"])
    except (UnknownLocaleError, ValueError):
        found = None
    return found.language if found else "zh"


def t(key: str, lang: str, **values: object) -> str:
    text = TEXTS[key].get(lang) or TEXTS[key]["en"]
    return text.format(**values) if values else text


def fmt_number(value: float | int | None, lang: str, digits: int = 0) -> str:
    if value is None:
        return "—"
    return format_decimal(value, format=f"#,##0{'.' + '0' * digits if digits else ''}",
                          locale="zh_CN" if lang == "zh" else "en")


def fmt_percent(value: float | None, lang: str) -> str:
    if value is None:
        return "—"
    return format_percent(value, format="#,##0.0%", locale="zh_CN" if lang == "zh" else "en")


# Stored keys of fixed lists shown on console pages (send kinds, channel kinds, the page-text languages).
TEXTS.update({
    "send_kind_welcome_dm": {"en": "welcome DM", "zh": "欢迎私信"},
    "send_kind_welcome_menu": {"en": "welcome menu", "zh": "欢迎菜单"},
    "send_kind_keyword_reply": {"en": "keyword reply", "zh": "关键词回复"},
    "send_kind_playbook": {"en": "playbook step", "zh": "剧本步骤"},
    "send_kind_coupon_dm": {"en": "coupon DM", "zh": "优惠券私信"},
    "send_kind_gate_link": {"en": "join form link", "zh": "问卷链接"},
    "send_kind_consent_reply": {"en": "consent reply", "zh": "同意回复"},
    "channel_kind_ad": {"en": "ad", "zh": "广告"},
    "channel_kind_content": {"en": "content", "zh": "内容"},
    "channel_kind_website": {"en": "website", "zh": "官网"},
    "channel_kind_offline": {"en": "offline", "zh": "线下"},
    "channel_kind_referral": {"en": "referral", "zh": "转介绍"},
    "language_zh": {"en": "Chinese", "zh": "中文"},
    "language_en": {"en": "English", "zh": "英文"},
    "results_no_task": {"en": "This send went out at once: there is no staff-confirmed task to follow.",
                        "zh": "这条消息是直接发出的，没有需要成员确认的群发任务可查。"},
})

# Experiments (docs/experiments.md): the plain-words conclusion under the results.
TEXTS.update({
    "xp_srm": {"en": "The split does not match the planned weights (SRM p = {p}): something in assignment or "
                     "logging is broken, so this result cannot be trusted. Fix the cause before reading it.",
               "zh": "实际分流比例与计划权重不符(SRM p = {p}):分组或埋点可能有问题,此结果不可信。请先排查原因。"},
    "xp_not_enough": {"en": "Not enough data yet: every variant needs {need} mature members (the fewest has "
                            "{have}). Keep it running; do not decide on the numbers so far.",
                      "zh": "数据还不够:每个组需要 {need} 个成熟成员(最少的一组只有 {have} 个)。请继续运行,"
                            "不要根据目前的数字做决定。"},
    "xp_winner": {"en": "{variant} converts better than {control}: {diff} points ({ci}), p = {p}, "
                        "chance to beat the control {chance}. Ship it.",
                  "zh": "{variant} 的转化优于 {control}:高 {diff} 个百分点({ci}),p = {p},"
                        "胜过对照组的概率 {chance}。可以上线。"},
    "xp_loser": {"en": "No variant beats {control}, and at least one converts worse. Keep {control}.",
                 "zh": "没有任何组胜过 {control},且至少一组转化更差。保留 {control}。"},
    "xp_no_difference": {"en": "No significant difference from {control} at this sample size; a real effect "
                               "smaller than the interval's width may still exist.",
                         "zh": "在当前样本量下与 {control} 没有显著差异;小于置信区间宽度的真实差异仍可能存在。"},
    "xp_guardrail_worse": {"en": "Guardrail warning: {metric} is significantly worse in {variant} ({diff}, "
                                 "p = {p}); weigh this harm before shipping it.",
                           "zh": "护栏指标警告:{variant} 组的 {metric} 显著变差({diff},p = {p});"
                                 "上线前请权衡这一损失。"},
    "xp_guardrails": {"en": "Guardrail metrics", "zh": "护栏指标"},
    "xp_metric": {"en": "Metric", "zh": "指标"},
    "xp_value": {"en": "Value", "zh": "数值"},
    "xp_control_value": {"en": "Control", "zh": "对照组"},
    "xp_worse": {"en": "significantly worse", "zh": "显著变差"},
    "xp_varies": {"en": "What varies", "zh": "测试对象"},
})

TEXTS.update({
    "xp_title": {"en": "Experiments", "zh": "实验"},
    "xp_intro": {"en": "A/B tests from experiment_exposure events: welcome texts run by qunflow, or variants your "
                       "shop or app assigns itself.",
                 "zh": "来自 experiment_exposure 事件的 A/B 实验:qunflow 运行的欢迎语实验,或商城/App 自行分组的实验。"},
    "xp_none": {"en": "No experiments yet.", "zh": "还没有实验。"},
    "xp_name": {"en": "Experiment", "zh": "实验"},
    "xp_exposures": {"en": "Exposures", "zh": "曝光数"},
    "xp_variants": {"en": "Variants", "zh": "组数"},
    "xp_last": {"en": "Last exposure (UTC)", "zh": "最近曝光(UTC)"},
    "xp_as_of": {"en": "as of", "zh": "截至"},
    "xp_variant": {"en": "Variant", "zh": "组"},
    "xp_control": {"en": "control", "zh": "对照组"},
    "xp_members": {"en": "Exposed", "zh": "曝光成员"},
    "xp_mature": {"en": "Mature (30 d)", "zh": "满 30 天"},
    "xp_converted": {"en": "Converted", "zh": "已转化"},
    "xp_diff": {"en": "Diff. vs control", "zh": "与对照组之差"},
    "xp_chance": {"en": "Chance to beat control", "zh": "胜过对照组的概率"},
    "xp_srm_label": {"en": "Sample-ratio check (p)", "zh": "样本比例检验(p)"},
    "xp_srm_flag": {"en": "mismatch", "zh": "比例失衡"},
    "xp_enough_yes": {"en": "Enough data", "zh": "数据充足"},
    "xp_enough_no": {"en": "Not enough data", "zh": "数据不足"},
    "xp_min_mature": {"en": "needs {n} mature members per variant", "zh": "每组需要 {n} 个成熟成员"},
    "xp_sample_size": {"en": "per variant to detect a {mde} relative change",
                       "zh": "每组样本量(检测 {mde} 的相对变化)"},
    "xp_verdict_srm": {"en": "Cannot be trusted", "zh": "结果不可信"},
    "xp_verdict_not_enough_data": {"en": "Keep running", "zh": "继续运行"},
    "xp_verdict_winner": {"en": "Winner", "zh": "有胜出组"},
    "xp_verdict_loser": {"en": "Keep the control", "zh": "保留对照组"},
    "xp_verdict_no_difference": {"en": "No clear difference", "zh": "无明显差异"},
    "xp_horizon_note": {"en": "Fixed horizon: read the result once every variant has reached the planned number of "
                              "mature members; looking earlier and stopping at the first low p-value inflates false "
                              "wins. Until then the verdict stays \"keep running\".",
                        "zh": "固定样本量:每组都达到计划的成熟成员数后再读结果;提前偷看并在 p 值第一次变小时就停止,"
                              "会放大假阳性。在此之前结论一直是「继续运行」。"},
})
